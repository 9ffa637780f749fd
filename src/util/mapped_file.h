// Read-only memory mapping of a whole file. Model weights are used in place
// from the mapping, so loading a model costs no copy and the page cache is
// shared between processes.
//
// A file changed in place while it is mapped (`cp other.gguf loaded.gguf`
// truncates and rewrites the same inode) is not flatline's to prevent, but
// it must not kill the process:
// - FileIdentity (device, inode, size, mtime) lets owners notice the change
//   before using the mapping again (the model manager reloads);
// - when the file shrinks under a mapping, reading the vanished pages raises
//   SIGBUS. MappedFile installs a handler that, for addresses inside a live
//   mapping only, maps a zero page over the faulting page and returns: the
//   read sees zeros instead of killing the process, and fault_count() goes
//   up so the request using it can be failed. Faults anywhere else keep the
//   default action.
// Replacing a file atomically (write a new file, rename it over the old one,
// as `mv` and package managers do) never disturbs a mapping: it keeps the
// old inode alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace flatline {

struct FileIdentity {
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0;
  bool exists = false;
  bool operator==(const FileIdentity&) const = default;
  // Reads the identity of `path` now (exists = false if it cannot be stat'ed).
  static FileIdentity of(const std::string& path);
  std::string describe() const;  // "inode 123, 4096 bytes, modified 2024-..."
};

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);  // throws Error
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // The file as it was when mapped.
  const FileIdentity& identity() const { return identity_; }

  // Pages that vanished under a reader (see above) since start: of any
  // mapping, or of the mappings of one file (device + inode).
  static uint64_t fault_count();
  static uint64_t fault_count(const FileIdentity& file);

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  FileIdentity identity_;
  int slot_ = -1;  // in the SIGBUS handler's table of live mappings
};

}  // namespace flatline
