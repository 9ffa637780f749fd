#include "util/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include "util/error.h"
#include "util/log.h"

namespace flatline {

namespace {

// Live mappings, read by the SIGBUS handler: plain atomics, no locks, no
// allocation. A slot is free when its end is 0.
constexpr int kSlots = 512;
struct Range {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<uint64_t> device{0}, inode{0};
  std::atomic<uint64_t> faults{0};  // of the mapping in this slot now
};
Range g_ranges[kSlots];
std::atomic<uint64_t> g_faults{0};
struct sigaction g_previous_sigbus;
std::mutex g_slot_mutex;  // serialises slot allocation (not used by the handler)

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Range& r : g_ranges) {
    const uintptr_t end = r.end.load(std::memory_order_acquire);
    if (end == 0 || addr < r.begin.load(std::memory_order_relaxed) || addr >= end) continue;
    const uintptr_t page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    void* page = reinterpret_cast<void*>(addr & ~(page_size - 1));
    // A private zero page in place of the vanished file page; the faulting
    // read is retried on return and sees zeros.
    if (mmap(page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
      g_faults.fetch_add(1, std::memory_order_relaxed);
      r.faults.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    break;
  }
  // Not ours (or the patch failed): the previous disposition handles the
  // fault when it happens again on return.
  sigaction(SIGBUS, &g_previous_sigbus, nullptr);
  (void)sig;
  (void)context;
}

void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
}

int register_range(const uint8_t* data, size_t size, const FileIdentity& id) {
  install_sigbus_handler();
  std::lock_guard<std::mutex> lock(g_slot_mutex);
  for (int i = 0; i < kSlots; ++i) {
    if (g_ranges[i].end.load() != 0) continue;
    g_ranges[i].device.store(id.device, std::memory_order_relaxed);
    g_ranges[i].inode.store(id.inode, std::memory_order_relaxed);
    g_ranges[i].faults.store(0, std::memory_order_relaxed);
    g_ranges[i].begin.store(reinterpret_cast<uintptr_t>(data), std::memory_order_relaxed);
    g_ranges[i].end.store(reinterpret_cast<uintptr_t>(data) + size, std::memory_order_release);
    return i;
  }
  static std::once_flag warned;
  std::call_once(warned, [] {
    LOG_WARN("more than " << kSlots << " files mapped at once: later ones are not protected against being truncated");
  });
  return -1;
}

void unregister_range(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_slot_mutex);
  g_ranges[slot].end.store(0, std::memory_order_release);
  g_ranges[slot].begin.store(0, std::memory_order_relaxed);
}

FileIdentity identity_from(const struct stat& st) {
  FileIdentity id;
  id.exists = true;
  id.device = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

}  // namespace

FileIdentity FileIdentity::of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileIdentity{};
  return identity_from(st);
}

std::string FileIdentity::describe() const {
  if (!exists) return "missing";
  std::time_t secs = static_cast<std::time_t>(mtime_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return "inode " + std::to_string(inode) + ", " + std::to_string(size) + " bytes, modified " + when;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error("cannot stat " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + " is not a regular file");
  }
  identity_ = identity_from(st);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    data_ = nullptr;
    return;
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(err));
  data_ = static_cast<const uint8_t*>(p);
  slot_ = register_range(data_, size_, identity_);
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_), identity_(other.identity_), slot_(other.slot_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.slot_ = -1;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    identity_ = other.identity_;
    slot_ = other.slot_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.slot_ = -1;
  }
  return *this;
}

void MappedFile::release() {
  unregister_range(slot_);
  slot_ = -1;
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

uint64_t MappedFile::fault_count() { return g_faults.load(std::memory_order_relaxed); }

uint64_t MappedFile::fault_count(const FileIdentity& file) {
  uint64_t n = 0;
  for (const Range& r : g_ranges)
    if (r.end.load(std::memory_order_acquire) != 0 && r.device.load() == file.device && r.inode.load() == file.inode)
      n += r.faults.load(std::memory_order_relaxed);
  return n;
}

}  // namespace flatline
