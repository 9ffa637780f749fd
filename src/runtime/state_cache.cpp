#include "runtime/state_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <unordered_set>

#include "runtime/content_hash.h"
#include "runtime/memory_budget.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/limits.h"
#include "util/log.h"

namespace flatline {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'F', 'L', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr std::string_view kExtension = ".flstate";
constexpr std::string_view kTempMarker = ".flstate.tmp.";
constexpr const char* kRejectedDir = "rejected";
constexpr size_t kIndexChecksumOffset = 72;
// Rejected files kept for inspection; older ones are deleted.
constexpr size_t kMaxRejectedKept = 64;
// A temp file this old belongs to a write that will never finish, whoever
// made it (another machine's process cannot be asked whether it lives).
constexpr auto kStaleTempAge = std::chrono::hours(1);
constexpr size_t kMaxPendingSyncs = 256;
// Chain policy (docs/SERVER.md "The state cache"): this many of the most
// recent optional snapshots of a conversation, then one per doubling of the
// distance from the newest in units of kSparseBaseTokens.
constexpr size_t kDenseRecent = 4;
constexpr uint64_t kSparseBaseTokens = 128;
// Message-boundary snapshots of a conversation kept beyond that budget.
constexpr size_t kKeptBoundaries = 3;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}
bool is_strict_prefix(std::string_view prefix, std::string_view text) {
  return prefix.size() < text.size() && text.compare(0, prefix.size(), prefix) == 0;
}

// The n_ctx a snapshot for this request carries: recurrent states have no
// capacity, so any request can use them. Snapshots are used only by
// requests of exactly their context (a larger one would let a conversation
// grow past what the server reserved for it).
int64_t context_key(const LoadedModel& model, int64_t n_ctx) { return model.traits().has_context_limit ? n_ctx : 0; }

char kind_letter(SnapshotKind kind) { return kind == SnapshotKind::PromptEnd ? 'p' : 'r'; }

struct FixedHeader {
  uint32_t version = kStateFileVersion;
  uint32_t header_bytes = kStateFileHeaderBytes;
  uint32_t fingerprint_len = 0;
  uint32_t pending_count = 0;
  uint64_t fed_text_len = 0;
  uint64_t token_count = 0;
  uint64_t pending_text_len = 0;
  uint64_t logit_count = 0;
  uint64_t state_len = 0;
  int64_t n_ctx = 0;
  uint64_t index_checksum = 0;

  uint64_t total_bytes() const {
    return kStateFileHeaderBytes + fingerprint_len + fed_text_len + 4 * token_count + 4ull * pending_count +
           pending_text_len + 4 * logit_count + state_len + 8;
  }
};

template <typename T>
void put(std::vector<uint8_t>& out, size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof v);
}
template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void write_fixed_header(std::vector<uint8_t>& out, const FixedHeader& h) {
  std::memcpy(out.data(), kMagic, 8);
  put(out, 8, h.version);
  put(out, 12, h.header_bytes);
  put(out, 16, h.fingerprint_len);
  put(out, 20, h.pending_count);
  put(out, 24, h.fed_text_len);
  put(out, 32, h.token_count);
  put(out, 40, h.pending_text_len);
  put(out, 48, h.logit_count);
  put(out, 56, h.state_len);
  put(out, 64, h.n_ctx);
  put(out, 72, h.index_checksum);
}

// Parses and checks the fixed header. `available` is the file size.
FixedHeader parse_fixed_header(const uint8_t* p, uint64_t available, const std::string& name) {
  if (available < kStateFileHeaderBytes)
    throw Error(name + ": truncated state file: " + std::to_string(available) + " bytes, the header alone needs " +
                std::to_string(kStateFileHeaderBytes));
  if (std::memcmp(p, kMagic, 8) != 0) throw Error(name + ": not a flatline state file (bad magic)");
  FixedHeader h;
  h.version = get<uint32_t>(p + 8);
  if (h.version != kStateFileVersion)
    throw Error(name + ": state file format version " + std::to_string(h.version) + ", expected " +
                std::to_string(kStateFileVersion));
  h.header_bytes = get<uint32_t>(p + 12);
  if (h.header_bytes != kStateFileHeaderBytes)
    throw Error(name + ": state file header size " + std::to_string(h.header_bytes) + ", expected " +
                std::to_string(kStateFileHeaderBytes));
  h.fingerprint_len = get<uint32_t>(p + 16);
  h.pending_count = get<uint32_t>(p + 20);
  h.fed_text_len = get<uint64_t>(p + 24);
  h.token_count = get<uint64_t>(p + 32);
  h.pending_text_len = get<uint64_t>(p + 40);
  h.logit_count = get<uint64_t>(p + 48);
  h.state_len = get<uint64_t>(p + 56);
  h.n_ctx = get<int64_t>(p + 64);
  h.index_checksum = get<uint64_t>(p + 72);
  // Every length is bounded by the file size, so the sum cannot overflow.
  for (uint64_t len : {uint64_t(h.fingerprint_len), h.fed_text_len, h.token_count, uint64_t(h.pending_count),
                       h.pending_text_len, h.logit_count, h.state_len}) {
    if (len > available) throw Error(name + ": truncated or corrupt state file: a length field exceeds the file size");
  }
  if (h.total_bytes() != available)
    throw Error(name + ": truncated or corrupt state file: the header describes " + std::to_string(h.total_bytes()) +
                " bytes, the file has " + std::to_string(available));
  if (h.n_ctx < 0) throw Error(name + ": corrupt state file: negative context size");
  return h;
}

uint64_t index_checksum(const uint8_t* header_start, std::string_view fingerprint, std::string_view fed_text) {
  ContentHash h;
  h.update(header_start, kIndexChecksumOffset);
  h.update(fingerprint);
  h.update(fed_text);
  return h.digest();
}

std::vector<uint8_t> read_prefix(const std::string& path, uint64_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open state file " + path);
  std::vector<uint8_t> buf(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n));
  buf.resize(static_cast<size_t>(in.gcount()));
  return buf;
}

// The whole file, or nullopt when it does not exist (any more): another
// server sharing the directory may delete a file between listing and reading.
std::optional<std::vector<uint8_t>> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw Error("cannot open state file " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  std::vector<uint8_t> bytes;
  try {
    bytes.resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc&) {
    ::close(fd);
    throw Error(path + ": state file of " + std::to_string(st.st_size) + " bytes does not fit in memory");
  }
  size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + at, bytes.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
  ::close(fd);
  if (at != bytes.size()) throw Error(path + ": state file changed while it was read");
  return bytes;
}

bool parse_hex64(std::string_view s, uint64_t& out) {
  if (s.size() != 16) return false;
  out = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    out = out << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

bool parse_decimal(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  std::string h(buf);
  std::replace(h.begin(), h.end(), '.', '_');  // the temp name is split on dots
  return h;
}

// Whether a leftover temp file may be deleted: its write cannot finish any
// more (its process on this machine is gone) or it is older than any write
// takes. Names: "<state file>.tmp.<host>.<pid>.<n>" (older builds:
// "<state file>.tmp.<pid>").
bool is_stale_temp(const fs::path& path, std::string_view file, const std::string& my_host) {
  std::error_code ec;
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return false;
  if (fs::file_time_type::clock::now() - mtime > kStaleTempAge) return true;
  const std::string_view tail = file.substr(file.find(kTempMarker) + kTempMarker.size());
  const auto parts = split(tail, '.');
  std::string_view host = my_host, pid_text;
  if (parts.size() == 1) {
    pid_text = parts[0];
  } else if (parts.size() == 3) {
    host = parts[0];
    pid_text = parts[1];
  } else {
    return false;
  }
  uint64_t pid = 0;
  if (host != my_host || !parse_decimal(pid_text, pid) || pid == 0 || pid > 4194304) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

// ---------------------------------------------------------------------------
// State files

std::string state_file_name(const std::string& fingerprint, int64_t n_ctx, std::string_view fed_text,
                            SnapshotKind kind) {
  return hex64(ContentHash::of(fingerprint)) + "-" + std::to_string(n_ctx) + "-" + std::to_string(fed_text.size()) +
         "-" + hex64(ContentHash::of(fed_text)) + "-" + kind_letter(kind) + std::string(kExtension);
}

std::optional<StateFileName> parse_state_file_name(std::string_view name) {
  if (name.size() <= kExtension.size() || name.substr(name.size() - kExtension.size()) != kExtension)
    return std::nullopt;
  const auto parts = split(name.substr(0, name.size() - kExtension.size()), '-');
  if (parts.size() != 5) return std::nullopt;
  StateFileName out;
  uint64_t ctx = 0;
  if (!parse_hex64(parts[0], out.model_hash) || !parse_decimal(parts[1], ctx) ||
      !parse_decimal(parts[2], out.text_bytes) || !parse_hex64(parts[3], out.text_hash))
    return std::nullopt;
  // An empty text would be a prefix of every prompt; no real conversation
  // has one.
  if (out.text_bytes == 0 || ctx > static_cast<uint64_t>(limits::kMaxContext)) return std::nullopt;
  out.n_ctx = static_cast<int64_t>(ctx);
  if (parts[4] == "p") out.kind = SnapshotKind::PromptEnd;
  else if (parts[4] == "r") out.kind = SnapshotKind::ReplyEnd;
  else return std::nullopt;
  return out;
}

std::vector<uint8_t> encode_state_file(const Conversation& conv, const std::string& fingerprint) {
  if (!conv.state) throw Error("internal error: saving a conversation without a state");
  std::vector<uint8_t> payload;
  conv.state->save(payload);
  FixedHeader h;
  h.fingerprint_len = static_cast<uint32_t>(fingerprint.size());
  h.pending_count = static_cast<uint32_t>(conv.pending_tokens.size());
  h.fed_text_len = conv.fed_text.size();
  h.token_count = conv.tokens.size();
  h.pending_text_len = conv.pending_text.size();
  h.logit_count = conv.last_logits.size();
  h.state_len = payload.size();
  h.n_ctx = conv.state->n_ctx();

  std::vector<uint8_t> out(static_cast<size_t>(h.total_bytes()));
  write_fixed_header(out, h);
  size_t at = kStateFileHeaderBytes;
  auto append = [&](const void* data, size_t n) {
    if (n) std::memcpy(out.data() + at, data, n);
    at += n;
  };
  append(fingerprint.data(), fingerprint.size());
  append(conv.fed_text.data(), conv.fed_text.size());
  append(conv.tokens.data(), conv.tokens.size() * 4);
  append(conv.pending_tokens.data(), conv.pending_tokens.size() * 4);
  append(conv.pending_text.data(), conv.pending_text.size());
  append(conv.last_logits.data(), conv.last_logits.size() * 4);
  append(payload.data(), payload.size());
  h.index_checksum = index_checksum(out.data(), fingerprint, conv.fed_text);
  put(out, kIndexChecksumOffset, h.index_checksum);
  put(out, at, ContentHash::of(out.data(), at));
  return out;
}

namespace {

// The context size in a file, checked against what the model's states can
// be before anything is sized from it.
void check_file_context(const FixedHeader& h, const LoadedModel& model, const std::string& name,
                        int64_t expected_ctx) {
  if (model.traits().has_context_limit) {
    if (h.n_ctx < 1 || h.n_ctx > limits::kMaxContext)
      throw Error(name + ": state file was made for a context of " + std::to_string(h.n_ctx) +
                  " tokens; this model's states hold 1 to " + std::to_string(limits::kMaxContext) + " tokens");
  } else if (h.n_ctx != 0) {
    throw Error(name + ": state file was made for a context of " + std::to_string(h.n_ctx) + " tokens, but " +
                model.info().name + " has no context limit (its states have size 0)");
  }
  if (expected_ctx >= 0 && h.n_ctx != expected_ctx)
    throw Error(name + ": state file was made for a context of " + std::to_string(h.n_ctx) +
                " tokens, this request uses " + std::to_string(expected_ctx));
}

}  // namespace

Conversation decode_state_file(std::span<const uint8_t> bytes, const LoadedModel& model, const std::string& name,
                               int64_t expected_ctx, const std::string& expected_fingerprint) {
  const std::string& want = expected_fingerprint.empty() ? model.fingerprint() : expected_fingerprint;
  FixedHeader h = parse_fixed_header(bytes.data(), bytes.size(), name);
  const uint8_t* p = bytes.data() + kStateFileHeaderBytes;
  std::string_view fingerprint(reinterpret_cast<const char*>(p), h.fingerprint_len);
  std::string_view fed_text(reinterpret_cast<const char*>(p + h.fingerprint_len), h.fed_text_len);
  if (index_checksum(bytes.data(), fingerprint, fed_text) != h.index_checksum)
    throw Error(name + ": corrupt state file: header checksum mismatch");
  const uint64_t stored = get<uint64_t>(bytes.data() + bytes.size() - 8);
  if (ContentHash::of(bytes.data(), bytes.size() - 8) != stored)
    throw Error(name + ": corrupt state file: checksum mismatch");
  if (fingerprint != want)
    throw Error(name + ": state file belongs to another model (fingerprint " + std::string(fingerprint) +
                ", the loaded model " + model.info().name + " has " + want + ")");
  if (h.fed_text_len == 0 || h.token_count == 0)
    throw Error(name + ": state file holds no conversation (" + std::to_string(h.token_count) + " tokens, " +
                std::to_string(h.fed_text_len) + " bytes of text); such a file would match every prompt");
  check_file_context(h, model, name, expected_ctx);
  // Nothing larger than one state of this context: the memory budget
  // reserved that much, and a state payload never needs more (its header
  // aside).
  const StateLayout& layout = model.model().state_layout();
  const uint64_t most = model.model().state_bytes(h.n_ctx) + 1024 +
                        64 * (layout.kv_layers.size() + layout.recurrent_slabs.size());
  if (h.state_len > most)
    throw Error(name + ": state payload of " + std::to_string(h.state_len) + " bytes is larger than a " +
                std::to_string(h.n_ctx) + "-token state of this model (at most " + std::to_string(most) + ")");
  const int64_t n_vocab = model.info().n_vocab;
  if (h.logit_count != 0 && h.logit_count != static_cast<uint64_t>(n_vocab))
    throw Error(name + ": state file has " + std::to_string(h.logit_count) + " logits, the model has " +
                std::to_string(n_vocab) + " tokens");

  Conversation conv;
  p += h.fingerprint_len;
  conv.fed_text.assign(reinterpret_cast<const char*>(p), h.fed_text_len);
  p += h.fed_text_len;
  auto read_ids = [&](std::vector<int32_t>& ids, uint64_t n) {
    ids.resize(static_cast<size_t>(n));
    if (n) std::memcpy(ids.data(), p, n * 4);
    p += n * 4;
    for (int32_t id : ids)
      if (id < 0 || id >= n_vocab)
        throw Error(name + ": state file holds token id " + std::to_string(id) + ", outside the model's vocabulary of " +
                    std::to_string(n_vocab));
  };
  read_ids(conv.tokens, h.token_count);
  read_ids(conv.pending_tokens, h.pending_count);
  conv.pending_text.assign(reinterpret_cast<const char*>(p), h.pending_text_len);
  p += h.pending_text_len;
  conv.last_logits.resize(static_cast<size_t>(h.logit_count));
  if (h.logit_count) std::memcpy(conv.last_logits.data(), p, h.logit_count * 4);
  p += h.logit_count * 4;
  if (conv.last_logits.empty()) throw Error(name + ": state file has tokens but no logits");
  // The payload's token count (after its magic and version) must be the
  // token list's before the payload is read at all.
  if (h.state_len >= 16 && get<int64_t>(p + 8) != static_cast<int64_t>(h.token_count))
    throw Error(name + ": state file is inconsistent: the state holds " + std::to_string(get<int64_t>(p + 8)) +
                " tokens, the token list " + std::to_string(h.token_count));
  conv.state = model.model().new_state(h.n_ctx);
  if (conv.state->n_ctx() != h.n_ctx)
    throw Error(name + ": state file was made for a " + std::to_string(h.n_ctx) + "-token context, this model gives " +
                std::to_string(conv.state->n_ctx()));
  try {
    conv.state->load(std::span<const uint8_t>(p, static_cast<size_t>(h.state_len)));
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());  // say which file it was
  }
  if (conv.state->n_past() != static_cast<int64_t>(conv.tokens.size()))
    throw Error(name + ": state file is inconsistent: the state holds " + std::to_string(conv.state->n_past()) +
                " tokens, the token list " + std::to_string(conv.tokens.size()));
  return conv;
}

void save_state_file(const std::string& path, const Conversation& conv, const std::string& fingerprint) {
  std::vector<uint8_t> bytes = encode_state_file(conv, fingerprint);
  AtomicFileWriter w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

Conversation load_state_file(const std::string& path, const LoadedModel& model, int64_t expected_ctx) {
  std::optional<std::vector<uint8_t>> bytes = read_whole_file(path);
  if (!bytes) throw Error("cannot read state file " + path + ": " + std::strerror(ENOENT));
  return decode_state_file(*bytes, model, path, expected_ctx);
}

StateFileIndex read_state_file_index(const std::string& path) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) throw Error("cannot read state file " + path + ": " + ec.message());
  std::vector<uint8_t> head = read_prefix(path, std::min<uint64_t>(size, kStateFileHeaderBytes));
  FixedHeader h = parse_fixed_header(head.data(), size, path);
  std::vector<uint8_t> index = read_prefix(path, kStateFileHeaderBytes + h.fingerprint_len + h.fed_text_len);
  std::string_view fingerprint(reinterpret_cast<const char*>(index.data() + kStateFileHeaderBytes), h.fingerprint_len);
  std::string_view fed_text(reinterpret_cast<const char*>(index.data() + kStateFileHeaderBytes + h.fingerprint_len),
                            h.fed_text_len);
  if (index_checksum(index.data(), fingerprint, fed_text) != h.index_checksum)
    throw Error(path + ": corrupt state file: header checksum mismatch");
  StateFileIndex out;
  out.path = path;
  out.fingerprint = fingerprint;
  out.fed_text = fed_text;
  out.n_ctx = h.n_ctx;
  out.n_tokens = h.token_count;
  out.file_bytes = size;
  return out;
}

// ---------------------------------------------------------------------------
// StateCache: construction, lookup, store

StateCache::StateCache(StateCacheOptions options) : options_(std::move(options)) {
  if (!options_.directory.empty()) {
    std::error_code ec;
    fs::create_directories(options_.directory, ec);
    if (ec) throw Error("cannot create the state directory " + options_.directory + ": " + ec.message());
    temp_tag_ = std::string(".tmp.") + host_name() + "." + std::to_string(::getpid()) + ".";
    scan_directory();
    syncer_ = std::thread([this] { sync_loop(); });
  }
}

StateCache::~StateCache() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
}

std::optional<Conversation> StateCache::lookup(const LoadedModel& model, int64_t n_ctx, std::string_view prompt,
                                               std::string_view variant) {
  const std::string fp = model.fingerprint() + std::string(variant);
  const int64_t key_ctx = context_key(model, n_ctx);
  auto find_best = [&]() {
    auto best = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->n_ctx != key_ctx || it->fingerprint != fp || !starts_with(prompt, it->conv->fed_text)) continue;
      if (best == entries_.end() || it->conv->fed_text.size() > best->conv->fed_text.size()) best = it;
    }
    return best;
  };
  size_t memory_len = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = find_best();
    if (best != entries_.end()) memory_len = best->conv->fed_text.size();
  }
  // A longer snapshot on disk (after a restart, or written by another
  // server sharing the directory) beats a shorter one in memory.
  if (!options_.directory.empty()) {
    if (std::optional<Conversation> from_disk = load_from_disk(model, fp, key_ctx, prompt, memory_len)) return from_disk;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto best = find_best();
  if (best == entries_.end()) {
    ++counters_.misses;
    return std::nullopt;
  }
  ++counters_.hits;
  entries_.splice(entries_.begin(), entries_, best);  // most recently used
  return entries_.front().conv->clone();
}

void StateCache::store(const LoadedModel& model, Conversation snapshot, bool persist, SnapshotKind kind,
                       std::string_view variant) {
  // A snapshot of nothing would be a prefix of every prompt.
  if (!snapshot.state || snapshot.fed_text.empty() || snapshot.tokens.empty()) return;
  const int64_t key_ctx = snapshot.state->n_ctx();
  auto shared = std::make_shared<const Conversation>(std::move(snapshot));
  const std::string fp = model.fingerprint() + std::string(variant);
  Entry e = make_entry(fp, key_ctx, shared, static_cast<uint8_t>(kind));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    insert_memory(std::move(e));
  }
  if (persist && !options_.directory.empty() && kind != SnapshotKind::Boundary) write_to_disk(fp, key_ctx, *shared, kind);
}

void StateCache::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  sync_cv_.wait(lock, [&] { return (to_sync_.empty() && !syncing_) || !syncer_.joinable(); });
}

StateCacheStats StateCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  StateCacheStats s = counters_;
  s.entries = entries_.size();
  s.boundary_entries = static_cast<uint64_t>(std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) {
    return e.kinds == static_cast<uint8_t>(SnapshotKind::Boundary);
  }));
  s.bytes = memory_bytes();
  s.fixed_bytes = own_bytes_;
  s.kv_bytes = kv_bytes_;
  s.kv_shared_bytes = kv_shared_bytes_;
  s.kv_unshared_bytes_equivalent = kv_logical_bytes_;
  s.disk_entries = disk_.size();
  s.disk_bytes = disk_bytes_;
  return s;
}

// ---------------------------------------------------------------------------
// Memory: entries, shared pages, the chain policy

StateCache::Entry StateCache::make_entry(const std::string& fingerprint, int64_t n_ctx, Snapshot conv,
                                         uint8_t kinds) const {
  Entry e;
  e.fingerprint = fingerprint;
  e.n_ctx = n_ctx;
  e.kinds = kinds;
  const StateMemory m = conv->state->memory();
  conv->state->for_each_kv_page([&](const void* id, uint64_t bytes) {
    e.pages.push_back(Page{id, bytes});
    e.kv_bytes += bytes;
  });
  const uint64_t total = conv->memory_bytes();
  e.own_bytes = total > m.kv ? total - m.kv : total;
  e.conv = std::move(conv);
  return e;
}

uint64_t StateCache::marginal_bytes(const Entry& e) const {
  uint64_t m = e.own_bytes;
  for (const Page& p : e.pages)
    if (!pages_.count(p.id)) m += p.bytes;
  return m;
}

void StateCache::erase_entry(EntryIt it) {
  for (const Page& p : it->pages) {
    auto use = pages_.find(p.id);
    if (use == pages_.end()) continue;
    if (--use->second.refs == 0) {
      kv_bytes_ -= use->second.bytes;
      pages_.erase(use);
    } else if (use->second.refs == 1) {
      kv_shared_bytes_ -= use->second.bytes;
    }
  }
  own_bytes_ -= it->own_bytes;
  kv_logical_bytes_ -= it->kv_bytes;
  entries_.erase(it);
}

void StateCache::insert_memory(Entry e) {
  const std::string& text = e.conv->fed_text;
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->n_ctx == e.n_ctx && it->fingerprint == e.fingerprint && it->conv->fed_text == text) {
      e.kinds |= it->kinds;  // the same state, now also e.g. a prompt end
      erase_entry(it);
      break;
    }
  }
  if (e.total() > options_.memory_limit) {
    LOG_DEBUG("state cache: a " << format_bytes(e.total()) << " snapshot does not fit the "
                                << format_bytes(options_.memory_limit) << " cache; not kept in memory");
    return;
  }
  if (e.kinds != static_cast<uint8_t>(SnapshotKind::Boundary)) drop_abandoned_replies(e);
  keep_chain_within_budget(e);
  while (!entries_.empty() && memory_bytes() + marginal_bytes(e) > options_.memory_limit) {
    erase_entry(std::prev(entries_.end()));
    ++counters_.evictions;
  }
  for (const Page& p : e.pages) {
    PageUse& use = pages_[p.id];
    if (use.refs == 0) {
      use.bytes = p.bytes;
      kv_bytes_ += p.bytes;
    } else if (use.refs == 1) {
      kv_shared_bytes_ += p.bytes;
    }
    ++use.refs;
  }
  own_bytes_ += e.own_bytes;
  kv_logical_bytes_ += e.kv_bytes;
  entries_.push_front(std::move(e));
  counters_.peak_bytes = std::max(counters_.peak_bytes, memory_bytes());
}

// A reply to a prompt end A, or a later prompt that went on from A with
// other text than the cached reply (the client stripped its reasoning or
// edited it), replaces the other replies to A: entries that extend A, are
// not on the new snapshot's path and have no later prompt end of their own
// (those belong to a conversation that moved on from there, possibly
// another client's).
void StateCache::drop_abandoned_replies(const Entry& x) {
  const std::string& text = x.conv->fed_text;
  auto same_model = [&](const Entry& e) { return e.n_ctx == x.n_ctx && e.fingerprint == x.fingerprint; };
  const std::string* anchor = nullptr;
  for (const Entry& e : entries_)
    if (same_model(e) && e.is(SnapshotKind::PromptEnd) && is_strict_prefix(e.conv->fed_text, text) &&
        (!anchor || e.conv->fed_text.size() > anchor->size()))
      anchor = &e.conv->fed_text;
  if (!anchor) return;
  const std::string anchor_text = *anchor;
  std::vector<std::string> later_prompts;
  for (const Entry& e : entries_)
    if (same_model(e) && e.is(SnapshotKind::PromptEnd) && is_strict_prefix(anchor_text, e.conv->fed_text))
      later_prompts.push_back(e.conv->fed_text);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const std::string& t = it->conv->fed_text;
    const bool alternative = same_model(*it) && is_strict_prefix(anchor_text, t) && !starts_with(text, t);
    const bool moved_on = std::any_of(later_prompts.begin(), later_prompts.end(),
                                      [&](const std::string& p) { return starts_with(t, p); });
    if (alternative && !moved_on) {
      auto next = std::next(it);
      erase_entry(it);
      ++counters_.superseded;
      it = next;
    } else {
      ++it;
    }
  }
}

// The snapshots a conversation leaves behind are the prefixes of its newest
// one. Always kept: the newest (x), the longest of the others (where x's
// prompt or reply started) and, for a reply, the prompt end it started from
// (so a regenerated reply costs nothing even when the earlier reply is a
// prefix of it) and the newest kKeptBoundaries message boundaries. The
// other, optional ones are kept newest first — the
// kDenseRecent most recent, then one per doubling of the distance from x —
// while the whole chain costs at most chain_budget x the newest state
// (pages shared between them counted once).
void StateCache::keep_chain_within_budget(const Entry& x) {
  const std::string& text = x.conv->fed_text;
  std::vector<EntryIt> chain;
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->n_ctx == x.n_ctx && it->fingerprint == x.fingerprint && is_strict_prefix(it->conv->fed_text, text))
      chain.push_back(it);
  if (chain.empty()) return;
  std::sort(chain.begin(), chain.end(),
            [](EntryIt a, EntryIt b) { return a->conv->fed_text.size() > b->conv->fed_text.size(); });

  std::vector<bool> keep(chain.size(), false);
  keep[0] = true;
  if (x.is(SnapshotKind::ReplyEnd)) {
    for (size_t i = 0; i < chain.size(); ++i)
      if (chain[i]->is(SnapshotKind::PromptEnd)) {
        keep[i] = true;
        break;
      }
  }
  // Message boundaries exist only where a prompt was fed across several
  // messages (a history new to the server, or one the client edited); a
  // budget proportional to the state would drop them all for recurrent
  // models, so the newest few are kept whatever they cost.
  size_t boundaries = 0;
  for (size_t i = 0; i < chain.size() && boundaries < kKeptBoundaries; ++i)
    if (chain[i]->kinds == static_cast<uint8_t>(SnapshotKind::Boundary)) {
      keep[i] = true;
      ++boundaries;
    }
  std::unordered_set<const void*> held;
  for (const Page& p : x.pages) held.insert(p.id);
  auto cost_of = [&](const Entry& e) {
    uint64_t m = e.own_bytes;
    for (const Page& p : e.pages)
      if (!held.count(p.id)) m += p.bytes;
    return m;
  };
  auto hold = [&](const Entry& e) {
    for (const Page& p : e.pages) held.insert(p.id);
  };
  uint64_t cost = x.total();
  for (size_t i = 0; i < chain.size(); ++i)
    if (keep[i]) {
      cost += cost_of(*chain[i]);
      hold(*chain[i]);
    }
  const double budget = options_.chain_budget * static_cast<double>(x.total());
  const uint64_t newest_tokens = x.conv->tokens.size();
  size_t dense = 0;
  std::set<int> sparse_buckets;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (keep[i]) continue;
    const uint64_t tokens = chain[i]->conv->tokens.size();
    const uint64_t distance = newest_tokens > tokens ? newest_tokens - tokens : 0;
    const int bucket = std::bit_width(distance / kSparseBaseTokens);
    const bool spaced = dense < kDenseRecent || !sparse_buckets.count(bucket);
    const uint64_t extra = cost_of(*chain[i]);
    if (spaced && static_cast<double>(cost + extra) <= budget) {
      keep[i] = true;
      cost += extra;
      hold(*chain[i]);
      if (dense < kDenseRecent) ++dense;
      else sparse_buckets.insert(bucket);
    }
  }
  for (size_t i = 0; i < chain.size(); ++i)
    if (!keep[i]) {
      erase_entry(chain[i]);
      ++counters_.superseded;
    }
}

// ---------------------------------------------------------------------------
// Disk: a directory shared by every server that uses it

std::string StateCache::path_of(const std::string& name) const { return (fs::path(options_.directory) / name).string(); }

void StateCache::scan_directory() {
  std::error_code ec;
  const std::string my_host = temp_tag_.substr(5, temp_tag_.find('.', 5) - 5);
  std::vector<std::string> bad;
  for (const auto& item : fs::directory_iterator(options_.directory, ec)) {
    if (!item.is_regular_file(ec)) continue;
    const std::string file = item.path().filename().string();
    if (file.find(kTempMarker) != std::string::npos) {
      // Another server's write in progress, unless its process is gone or
      // it is older than any write takes.
      if (is_stale_temp(item.path(), file, my_host)) fs::remove(item.path(), ec);
      continue;
    }
    if (item.path().extension() != kExtension) continue;
    std::optional<StateFileName> name = parse_state_file_name(file);
    if (!name) {
      bad.push_back(file);
      continue;
    }
    const uint64_t size = item.file_size(ec);
    if (ec) continue;
    disk_[file] = DiskEntry{*name, size};
    disk_bytes_ += size;
  }
  for (const std::string& file : bad)
    reject_file(file, "not a state file name (expected <model>-<n_ctx>-<text bytes>-<text hash>-<p|r>.flstate, "
                      "see docs/SERVER.md \"State files\")");
  if (!disk_.empty())
    LOG_INFO("state cache: " << disk_.size() << " saved conversation states (" << format_bytes(disk_bytes_) << ") in "
                             << options_.directory);
}

// Brings the index up to date with the directory: other servers add and
// delete files at any time. Only names are listed; a new name costs one stat.
void StateCache::refresh_disk_index() {
  std::vector<std::string> listed;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(options_.directory, ec)) {
    const std::string file = item.path().filename().string();
    if (file.size() > kExtension.size() && file.compare(file.size() - kExtension.size(), kExtension.size(),
                                                        kExtension) == 0)
      listed.push_back(file);
  }
  if (ec) {
    LOG_WARN("state cache: cannot list " << options_.directory << ": " << ec.message());
    return;
  }
  std::sort(listed.begin(), listed.end());
  std::vector<std::string> fresh;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = disk_.begin(); it != disk_.end();) {
      if (!std::binary_search(listed.begin(), listed.end(), it->first)) {
        disk_bytes_ -= it->second.file_bytes;
        it = disk_.erase(it);
      } else {
        ++it;
      }
    }
    for (const std::string& file : listed)
      if (!disk_.count(file) && !refused_names_.count(file)) fresh.push_back(file);
  }
  std::vector<std::pair<std::string, DiskEntry>> found;
  for (const std::string& file : fresh) {
    std::optional<StateFileName> name = parse_state_file_name(file);
    if (!name) {
      reject_file(file, "not a state file name (expected <model>-<n_ctx>-<text bytes>-<text hash>-<p|r>.flstate)");
      continue;
    }
    const uint64_t size = fs::file_size(path_of(file), ec);
    if (ec) continue;  // gone again
    found.push_back({file, DiskEntry{*name, size}});
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [file, entry] : found)
    if (disk_.emplace(file, entry).second) disk_bytes_ += entry.file_bytes;
}

// Names of the files that may hold a prefix of `prompt` longer than
// `longer_than` bytes, longest first: same model and context, and the hash
// of the prompt's first <text bytes> equals the name's text hash (computed
// in one pass over the prompt). Needs mutex_.
std::vector<std::string> StateCache::disk_candidates(const std::string& fingerprint, int64_t n_ctx,
                                                     std::string_view prompt, size_t longer_than) const {
  const uint64_t model_hash = ContentHash::of(fingerprint);
  std::vector<std::pair<uint64_t, const std::pair<const std::string, DiskEntry>*>> wanted;
  for (const auto& item : disk_) {
    const StateFileName& n = item.second.name;
    if (n.model_hash == model_hash && n.n_ctx == n_ctx && n.text_bytes > longer_than && n.text_bytes <= prompt.size())
      wanted.push_back({n.text_bytes, &item});
  }
  std::sort(wanted.begin(), wanted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  ContentHash h;
  uint64_t at = 0;
  for (const auto& [len, item] : wanted) {
    h.update(prompt.substr(at, len - at));
    at = len;
    if (h.digest() == item->second.name.text_hash) out.push_back(item->first);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<Conversation> StateCache::load_from_disk(const LoadedModel& model, const std::string& fingerprint,
                                                       int64_t n_ctx, std::string_view prompt, size_t longer_than) {
  refresh_disk_index();
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    names = disk_candidates(fingerprint, n_ctx, prompt, longer_than);
  }
  for (const std::string& file : names) {
    const std::string path = path_of(file);
    std::optional<Conversation> conv;
    try {
      std::optional<std::vector<uint8_t>> bytes = read_whole_file(path);
      if (!bytes) {  // deleted by another server since the listing
        std::lock_guard<std::mutex> lock(mutex_);
        if (auto it = disk_.find(file); it != disk_.end()) {
          disk_bytes_ -= it->second.file_bytes;
          disk_.erase(it);
        }
        continue;
      }
      conv = decode_state_file(*bytes, model, path, n_ctx, fingerprint);
    } catch (const Error& err) {
      reject_file(file, err.what());
      continue;
    } catch (const std::bad_alloc&) {
      reject_file(file, path + ": not enough memory to load this state file");
      continue;
    }
    const StateFileName name = *parse_state_file_name(file);
    if (conv->fed_text.size() != name.text_bytes || ContentHash::of(conv->fed_text) != name.text_hash) {
      reject_file(file, path + ": the file's text does not match its name");
      continue;
    }
    if (!starts_with(prompt, conv->fed_text)) continue;  // a hash collision: another conversation's file
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);      // recently used, for every server's eviction
    auto shared = std::make_shared<const Conversation>(std::move(*conv));
    Entry e = make_entry(fingerprint, n_ctx, shared, static_cast<uint8_t>(name.kind));
    LOG_INFO("state cache: resumed a conversation of " << shared->tokens.size() << " tokens from " << path);
    std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.hits;
    ++counters_.disk_hits;
    ++counters_.files_read;
    insert_memory(std::move(e));
    return shared->clone();
  }
  return std::nullopt;
}

// Moves a bad file into rejected/ (so no server tries it again) and logs why.
void StateCache::reject_file(const std::string& file, const std::string& why) {
  const fs::path rejected = fs::path(options_.directory) / kRejectedDir;
  std::error_code ec;
  fs::create_directories(rejected, ec);
  fs::rename(path_of(file), rejected / file, ec);
  const bool moved = !ec;
  LOG_WARN("state cache: rejected " << why << (moved ? "; moved to " + (rejected / file).string() : ""));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.rejected_files;
    if (auto it = disk_.find(file); it != disk_.end()) {
      disk_bytes_ -= it->second.file_bytes;
      disk_.erase(it);
    }
    if (!moved && ec != std::errc::no_such_file_or_directory) refused_names_.insert(file);
  }
  // Keep the newest few for inspection.
  std::vector<std::pair<fs::file_time_type, fs::path>> kept;
  for (const auto& item : fs::directory_iterator(rejected, ec)) {
    auto t = item.last_write_time(ec);
    if (!ec) kept.push_back({t, item.path()});
  }
  if (kept.size() > kMaxRejectedKept) {
    std::sort(kept.begin(), kept.end());
    for (size_t i = 0; i + kMaxRejectedKept < kept.size(); ++i) fs::remove(kept[i].second, ec);
  }
}

// Written in place before store() returns (the next turn may go to another
// server); the fsync follows in the background. A temp name unique to this
// process and write, then rename: readers see the old file or the new one,
// and two servers writing the same snapshot both leave a complete file.
void StateCache::write_to_disk(const std::string& fingerprint, int64_t n_ctx, const Conversation& conv,
                               SnapshotKind kind) {
  static std::atomic<uint64_t> sequence{0};
  const std::string file = state_file_name(fingerprint, n_ctx, conv.fed_text, kind);
  const std::string path = path_of(file);
  const std::string temp = path + temp_tag_ + std::to_string(sequence++);
  uint64_t size = 0;
  try {
    const std::vector<uint8_t> bytes = encode_state_file(conv, fingerprint);
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) throw Error("cannot create " + temp + ": " + std::strerror(errno));
    size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(temp.c_str());
        throw Error("cannot write " + temp + ": " + std::strerror(err));
      }
      at += static_cast<size_t>(n);
    }
    if (::close(fd) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      ::unlink(temp.c_str());
      throw Error("cannot save " + path + ": " + std::strerror(err));
    }
    size = bytes.size();
  } catch (const Error& err) {
    LOG_WARN("state cache: could not save a conversation state: " << err.what());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.files_written;
    auto [it, added] = disk_.try_emplace(file, DiskEntry{*parse_state_file_name(file), size});
    if (!added) disk_bytes_ -= it->second.file_bytes;
    it->second.file_bytes = size;
    disk_bytes_ += size;
    to_sync_.push_back(file);
    while (to_sync_.size() > kMaxPendingSyncs) to_sync_.pop_front();
  }
  sync_cv_.notify_all();
  delete_superseded_files(fingerprint, n_ctx, conv.fed_text, kind, file);
  trim_disk(file);
}

// The same chain rule as in memory, without the optional snapshots (each
// file holds a whole state): the new file, the longest file before it and,
// for a reply, the prompt end it started from; older files of the
// conversation go.
void StateCache::delete_superseded_files(const std::string& fingerprint, int64_t n_ctx, const std::string& text,
                                         SnapshotKind kind, const std::string& keep) {
  std::vector<std::pair<uint64_t, std::string>> chain;  // (text bytes, name), prefixes of `text`
  std::vector<SnapshotKind> kinds;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const std::string& file : disk_candidates(fingerprint, n_ctx, text, 0)) {
      const DiskEntry& d = disk_.at(file);
      if (file == keep || d.name.text_bytes >= text.size()) continue;
      chain.push_back({d.name.text_bytes, file});
      kinds.push_back(d.name.kind);
    }
  }
  if (chain.empty()) return;
  // disk_candidates gives the longest first; files of the same text (one
  // written as a prompt end, one as a reply end) count as one step.
  const uint64_t longest = chain[0].first;
  bool kept_prompt = false;
  for (size_t i = 0; i < chain.size(); ++i) {
    bool required = chain[i].first == longest;
    if (!required && kind == SnapshotKind::ReplyEnd && !kept_prompt && kinds[i] == SnapshotKind::PromptEnd) required = true;
    if (kinds[i] == SnapshotKind::PromptEnd && required) kept_prompt = true;
    if (!required) remove_file(chain[i].second);
  }
}

void StateCache::remove_file(const std::string& file) {
  std::error_code ec;
  fs::remove(path_of(file), ec);
  std::lock_guard<std::mutex> lock(mutex_);
  ++counters_.files_deleted;
  if (auto it = disk_.find(file); it != disk_.end()) {
    disk_bytes_ -= it->second.file_bytes;
    disk_.erase(it);
  }
}

// Keeps the directory within disk_limit, counting every server's files:
// the index is refreshed first, and when it is over the limit the directory
// is listed with sizes and modification times (a read refreshes a file's
// time) and the oldest files are deleted. `keep` (just written) stays.
void StateCache::trim_disk(const std::string& keep) {
  refresh_disk_index();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (disk_bytes_ <= options_.disk_limit) return;
  }
  struct Found {
    fs::file_time_type mtime;
    uint64_t size;
    std::string file;
  };
  std::vector<Found> files;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(options_.directory, ec)) {
    const std::string file = item.path().filename().string();
    if (!parse_state_file_name(file)) continue;
    std::error_code e1, e2;
    const uint64_t size = item.file_size(e1);
    const auto mtime = item.last_write_time(e2);
    if (e1 || e2) continue;
    total += size;
    if (file != keep) files.push_back({mtime, size, file});
  }
  std::sort(files.begin(), files.end(), [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  size_t deleted = 0;
  for (const Found& f : files) {
    if (total <= options_.disk_limit) break;
    remove_file(f.file);
    total -= f.size;
    ++deleted;
  }
  if (deleted)
    LOG_DEBUG("state cache: deleted the " << deleted << " oldest state files to stay within "
                                          << format_bytes(options_.disk_limit));
}

void StateCache::sync_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    sync_cv_.wait(lock, [&] { return stopping_ || !to_sync_.empty(); });
    if (to_sync_.empty()) break;  // stopping, and everything is synced
    const std::string file = std::move(to_sync_.front());
    to_sync_.pop_front();
    syncing_ = true;
    lock.unlock();
    const int fd = ::open(path_of(file).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    const int dfd = ::open(options_.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    lock.lock();
    syncing_ = false;
    sync_cv_.notify_all();
  }
}

}  // namespace flatline
