// Crash-safe file writing: data goes to "<path>.tmp.<pid>", is fsync'ed, then
// renamed over <path>. Readers see either the old file or the complete new
// one, never a partial write. Used for models, converted files and saved
// conversation states.
#pragma once

#include <cstddef>
#include <string>

namespace flatline {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);  // throws Error
  ~AtomicFileWriter();                                 // removes the temp file unless committed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);  // throws Error
  void commit();                           // fsync + rename; throws Error

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace flatline
