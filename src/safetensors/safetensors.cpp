#include "safetensors/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace flatline::safetensors {

namespace {

using nlohmann::json;

struct DTypeEntry {
  DType type;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::BOOL, "BOOL", 1},       {DType::U8, "U8", 1},   {DType::I8, "I8", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E8M0, "F8_E8M0", 1},
    {DType::I16, "I16", 2},         {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},       {DType::I32, "I32", 4}, {DType::U32, "U32", 4},
    {DType::F32, "F32", 4},         {DType::F64, "F64", 8}, {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},
};

std::string known_dtypes() {
  std::string s;
  for (const auto& e : kDTypes) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The JSON value of a header entry, with the file and tensor named in every
// message.
class EntryParser {
 public:
  EntryParser(const std::string& file, const std::string& name, const json& entry)
      : file_(file), name_(name), entry_(entry) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file_ + ": tensor '" + name_ + "': " + what);
  }

  TensorInfo parse(uint64_t data_size) const {
    if (!entry_.is_object()) fail("expected an object with dtype, shape and data_offsets, found " + kind(entry_));
    for (const auto& [key, value] : entry_.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") fail("unexpected field '" + key + "'");
    }
    TensorInfo t;
    t.name = name_;
    t.file = file_;
    t.dtype = parse_dtype();
    t.shape = parse_shape();
    parse_offsets(t.begin, t.end);
    check_size(t);
    if (t.end > data_size) {
      fail("data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           "] go past the end of the data section (" + std::to_string(data_size) + " bytes)");
    }
    return t;
  }

 private:
  static std::string kind(const json& v) { return std::string(v.type_name()) + " " + v.dump().substr(0, 40); }

  DType parse_dtype() const {
    if (!entry_.contains("dtype") || !entry_["dtype"].is_string()) fail("missing string field 'dtype'");
    const std::string name = entry_["dtype"].get<std::string>();
    auto type = dtype_from_name(name);
    if (!type) fail("dtype '" + name + "' is unknown (expected one of " + known_dtypes() + ")");
    return *type;
  }

  std::vector<int64_t> parse_shape() const {
    if (!entry_.contains("shape") || !entry_["shape"].is_array()) fail("missing array field 'shape'");
    std::vector<int64_t> shape;
    for (const json& d : entry_["shape"]) {
      if (!d.is_number_unsigned()) fail("shape entries must be integers >= 0, found " + kind(d));
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX)) fail("shape entry " + std::to_string(v) + " is too large");
      shape.push_back(static_cast<int64_t>(v));
    }
    return shape;
  }

  void parse_offsets(uint64_t& begin, uint64_t& end) const {
    if (!entry_.contains("data_offsets") || !entry_["data_offsets"].is_array() || entry_["data_offsets"].size() != 2)
      fail("missing field 'data_offsets' = [begin, end]");
    const json& o = entry_["data_offsets"];
    if (!o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      fail("data_offsets must be integers >= 0, found " + o.dump());
    begin = o[0].get<uint64_t>();
    end = o[1].get<uint64_t>();
    if (end < begin) fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end before they begin");
  }

  // shape product x element size, with overflow checks, must equal the range.
  void check_size(const TensorInfo& t) const {
    uint64_t bytes = element_size(t.dtype);
    for (int64_t d : t.shape) {
      const uint64_t u = static_cast<uint64_t>(d);
      if (u != 0 && bytes > UINT64_MAX / u) fail("shape " + t.shape_string() + " overflows 64-bit byte counts");
      bytes *= u;
    }
    if (bytes != t.n_bytes()) {
      fail("shape " + t.shape_string() + " x " + std::to_string(element_size(t.dtype)) + " bytes (" +
           dtype_name(t.dtype) + ") = " + std::to_string(bytes) + " bytes, but data_offsets [" +
           std::to_string(t.begin) + ", " + std::to_string(t.end) + "] span " + std::to_string(t.n_bytes()) +
           " bytes");
    }
  }

  const std::string& file_;
  const std::string& name_;
  const json& entry_;
};

// Parses the header JSON, refusing a name that appears twice at the top level
// (nlohmann would silently keep the last one).
json parse_header_json(const std::string& file, std::string_view text) {
  std::set<std::string> seen;
  std::string duplicate;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    throw Error(file + ": the header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw Error(file + ": tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object()) throw Error(file + ": the header must be a JSON object, found " + header.type_name());
  return header;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& m) {
  if (!m.is_object()) throw Error(file + ": __metadata__ must be an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : m.items()) {
    if (!value.is_string()) throw Error(file + ": __metadata__['" + key + "'] must be a string, found " + value.dump());
    out[key] = value.get<std::string>();
  }
  return out;
}

void check_no_overlaps(const std::string& file, const std::vector<TensorInfo>& tensors) {
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors) {
    if (t.n_bytes() > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (b.begin < a.end) {
      throw Error(file + ": tensors '" + a.name + "' [" + std::to_string(a.begin) + ", " + std::to_string(a.end) +
                  ") and '" + b.name + "' [" + std::to_string(b.begin) + ", " + std::to_string(b.end) +
                  ") overlap");
    }
  }
}

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

// A shard name from an index must stay inside the checkpoint's directory.
void check_shard_name(const std::string& index_path, const std::string& shard) {
  const std::filesystem::path p(shard);
  bool bad = shard.empty() || p.is_absolute();
  for (const auto& part : p) bad = bad || part == "..";
  if (bad) throw Error(index_path + ": shard name '" + shard + "' must be a file name inside the checkpoint directory");
}

}  // namespace

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.type;
  }
  return std::nullopt;
}

const char* dtype_name(DType type) {
  for (const auto& e : kDTypes) {
    if (e.type == type) return e.name;
  }
  return "?";
}

size_t element_size(DType type) {
  for (const auto& e : kDTypes) {
    if (e.type == type) return e.size;
  }
  return 0;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

File File::open(const std::string& path) {
  auto mapping = std::make_unique<MappedFile>(path);
  File f = parse(mapping->bytes(), path);
  f.mapping_ = std::move(mapping);
  return f;
}

File File::parse(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 8) {
    throw Error(name + ": file is " + std::to_string(bytes.size()) +
                " bytes; a safetensors file starts with an 8-byte header length");
  }
  const uint64_t header_len = read_u64_le(bytes.data());
  const uint64_t after_len = bytes.size() - 8;
  if (header_len > kMaxHeaderBytes) {
    throw Error(name + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  }
  if (header_len > after_len) {
    throw Error(name + ": header length " + std::to_string(header_len) + " exceeds the " + std::to_string(after_len) +
                " bytes after the length field (truncated file?)");
  }
  if (header_len < 2) throw Error(name + ": header length " + std::to_string(header_len) + " is too short for a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  const json header = parse_header_json(name, text);

  File f;
  f.bytes_ = bytes;
  f.name_ = name;
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      f.metadata_ = parse_metadata(name, value);
      continue;
    }
    TensorInfo t = EntryParser(name, key, value).parse(data_size);
    t.data = bytes.data() + data_start + t.begin;
    f.index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  // nlohmann orders object keys alphabetically; keep the data order instead,
  // which is the order writers use and the order reading is sequential in.
  std::stable_sort(f.tensors_.begin(), f.tensors_.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  f.index_.clear();
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  check_no_overlaps(name, f.tensors_);
  return f;
}

const TensorInfo* File::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void File::release(const TensorInfo& t, uint64_t begin_offset, uint64_t end_offset) const {
  end_offset = std::min(end_offset, t.n_bytes());
  if (!mapping_ || begin_offset >= end_offset) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t base = reinterpret_cast<uintptr_t>(mapping_->data());
  const uintptr_t limit = (base + mapping_->size() + page - 1) / page * page;
  const uintptr_t first = reinterpret_cast<uintptr_t>(t.data) + begin_offset;
  const uintptr_t last = reinterpret_cast<uintptr_t>(t.data) + end_offset;
  const uintptr_t begin = std::max(first / page * page, base);
  const uintptr_t end = std::min((last + page - 1) / page * page, limit);
  // A read-only private file mapping: the pages come back from the page
  // cache if touched again, so this cannot change what is read.
  if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Checkpoint Checkpoint::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw Error(dir + ": not a directory");
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) return open_index(index.string());
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single)) return open_files({single.string()});
  std::vector<std::string> parts;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("model", 0) == 0 && entry.path().extension() == ".safetensors") parts.push_back(entry.path().string());
  }
  if (parts.empty()) {
    throw Error(dir + ": no model.safetensors, model.safetensors.index.json or model*.safetensors files");
  }
  std::sort(parts.begin(), parts.end());
  return open_files(parts);
}

Checkpoint Checkpoint::open_files(const std::vector<std::string>& paths) {
  Checkpoint c;
  for (const auto& p : paths) c.add_file(File::open(p));
  c.description_ = paths.size() == 1 ? paths[0] : std::to_string(paths.size()) + " files in " +
                                                      std::filesystem::path(paths[0]).parent_path().string();
  return c;
}

Checkpoint Checkpoint::open_index(const std::string& index_path) {
  namespace fs = std::filesystem;
  const json index = read_json_file(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw Error(index_path + ": expected an object with a \"weight_map\" object (tensor name -> shard file)");
  }
  // shard -> the tensors the index credits it with
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw Error(index_path + ": weight_map['" + tensor + "'] must be a file name string");
    check_shard_name(index_path, shard.get<std::string>());
    by_shard[shard.get<std::string>()].push_back(tensor);
  }
  if (by_shard.empty()) throw Error(index_path + ": weight_map is empty");
  const fs::path dir = fs::path(index_path).parent_path();
  for (const auto& [shard, names] : by_shard) {  // all shards first: a missing one is the clearest message
    if (!fs::exists(dir / shard)) {
      throw Error(index_path + ": weight_map names shard '" + shard + "' (for tensor '" + names.front() +
                  "'), which does not exist in " + dir.string());
    }
  }
  Checkpoint c;
  for (const auto& [shard, names] : by_shard) {
    File f = File::open((dir / shard).string());
    for (const auto& name : names) {
      if (!f.find(name)) {
        throw Error(index_path + ": tensor '" + name + "' is mapped to shard '" + shard + "', which does not hold it");
      }
    }
    for (const auto& t : f.tensors()) {
      if (std::find(names.begin(), names.end(), t.name) == names.end()) {
        throw Error(index_path + ": shard '" + shard + "' holds tensor '" + t.name +
                    "', which the index does not list for it");
      }
    }
    c.add_file(std::move(f));
  }
  c.description_ = std::to_string(by_shard.size()) + " shards of " + index_path;
  return c;
}

void Checkpoint::add_file(File file) {
  const size_t fi = files_.size();
  for (size_t ti = 0; ti < file.tensors().size(); ++ti) {
    const TensorInfo& t = file.tensors()[ti];
    auto [it, inserted] = index_.emplace(t.name, std::make_pair(fi, ti));
    if (!inserted) {
      throw Error("tensor '" + t.name + "' is in both " + files_[it->second.first].path() + " and " + file.path());
    }
  }
  files_.push_back(std::move(file));
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &files_[it->second.first].tensors()[it->second.second];
}

const TensorInfo& Checkpoint::tensor(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(description_ + ": missing tensor '" + std::string(name) + "'");
  return *t;
}

std::vector<const TensorInfo*> Checkpoint::tensors() const {
  std::vector<const TensorInfo*> out;
  for (const auto& f : files_) {
    for (const auto& t : f.tensors()) out.push_back(&t);
  }
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) {
    for (const auto& t : f.tensors()) n += t.n_bytes();
  }
  return n;
}

void Checkpoint::release(const TensorInfo& t, uint64_t begin, uint64_t end) const {
  auto it = index_.find(t.name);
  if (it != index_.end()) files_[it->second.first].release(t, begin, end);
}

}  // namespace flatline::safetensors
