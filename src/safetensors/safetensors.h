// Hugging Face safetensors checkpoints: a validated, memory-mapped reader.
//
// A .safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// optional "__metadata__": {str: str}}), then the raw little-endian tensor
// data; offsets are relative to the end of the header. Everything is checked
// before use: header length against the file and a sane bound, well-formed
// JSON, known dtypes, shape x element size == byte range (overflow checked),
// ranges inside the data section, no overlaps, no duplicate names. A sharded
// checkpoint (model.safetensors.index.json) is checked too: every shard it
// names exists and holds the tensors it is credited with, no tensor is in
// two shards, no shard holds a tensor the index does not list.
// Any problem raises flatline::Error naming the file, what was expected and
// what was found; the reader never reads outside a mapping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/mapped_file.h"

namespace flatline::safetensors {

// The dtypes of the safetensors format (names as written in the header).
enum class DType { BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

std::optional<DType> dtype_from_name(std::string_view name);
const char* dtype_name(DType type);
size_t element_size(DType type);  // bytes per element

// Header limit: the reference implementation refuses headers over 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major: shape.back() is the contiguous dimension
  uint64_t begin = 0;          // byte range inside the data section
  uint64_t end = 0;
  const uint8_t* data = nullptr;
  uint64_t n_bytes() const { return end - begin; }
  int64_t n_elements() const;
  std::string shape_string() const;  // "[512, 64]"
  std::string file;                  // the file it lives in (for messages)
};

// One .safetensors file.
class File {
 public:
  static File open(const std::string& path);  // maps and validates
  // Validates a buffer the caller keeps alive (tests).
  static File parse(std::span<const uint8_t> bytes, const std::string& display_name = "<memory>");

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

  const std::string& path() const { return name_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Drops the pages of a tensor's bytes from this process's resident set
  // (they stay in the page cache), so reading a checkpoint tensor by tensor
  // keeps memory at about one tensor.
  void release(const TensorInfo& t) const { release(t, 0, t.n_bytes()); }
  // Only bytes [begin, end) of the tensor (whole pages around them).
  void release(const TensorInfo& t, uint64_t begin, uint64_t end) const;

 private:
  File() = default;
  std::unique_ptr<MappedFile> mapping_;
  std::span<const uint8_t> bytes_;
  std::string name_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a model directory: one file or the shards of an index.
class Checkpoint {
 public:
  // model.safetensors.index.json if present, else model.safetensors, else
  // the model*.safetensors files of the directory (sorted).
  static Checkpoint open_dir(const std::string& dir);
  static Checkpoint open_index(const std::string& index_path);
  static Checkpoint open_files(const std::vector<std::string>& paths);

  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws Error naming the tensor
  std::vector<const TensorInfo*> tensors() const;         // file by file, in header order
  size_t file_count() const { return files_.size(); }
  uint64_t total_bytes() const;
  const std::string& description() const { return description_; }  // "DIR/model.safetensors" or "N shards of DIR"
  void release(const TensorInfo& t) const { release(t, 0, t.n_bytes()); }
  void release(const TensorInfo& t, uint64_t begin, uint64_t end) const;

 private:
  std::vector<File> files_;
  std::unordered_map<std::string, std::pair<size_t, size_t>> index_;  // name -> (file, tensor) indices
  std::string description_;
  void add_file(File file);
};

}  // namespace flatline::safetensors
