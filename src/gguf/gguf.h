// GGUF files (versions 2 and 3): a validated, memory-mapped reader.
//
// Everything in the header is checked before use: magic, version, counts
// against the bytes that remain, string and array lengths, tensor dims,
// types, alignment and that every tensor's data lies inside the file. Any
// problem raises flatline::Error with a message naming what was expected and
// what was found; the reader never reads outside the mapping.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"
#include "util/mapped_file.h"

namespace flatline::gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;

enum class ValueType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

const char* value_type_name(ValueType type);
size_t scalar_size(ValueType type);  // 0 for String/Array

// One metadata value. Strings and arrays point into the mapped file.
class Value {
 public:
  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::Array; }
  ValueType array_type() const { return array_type_; }
  uint64_t array_size() const { return count_; }

  bool is_integer() const;  // any integer type (not bool)
  bool is_number() const;   // integer or float

  // Scalar reads; throw Error naming the key when the type does not fit.
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_float() const;
  bool as_bool() const;
  std::string_view as_string() const;

  // Array element reads (bounds and type checked).
  int64_t int_at(uint64_t i) const;
  double float_at(uint64_t i) const;
  std::string_view string_at(uint64_t i) const;
  std::vector<int64_t> int_array() const;
  std::vector<float> float_array() const;
  std::vector<std::string_view> string_array() const;

  // Human-readable rendering; arrays are cut after max_items elements.
  std::string to_string(size_t max_items = 8) const;

 private:
  friend class Parser;
  std::string_view key_;
  ValueType type_ = ValueType::UInt8;
  ValueType array_type_ = ValueType::UInt8;
  uint64_t count_ = 0;
  const uint8_t* raw_ = nullptr;               // scalar bytes or first array element
  std::vector<std::string_view> strings_;      // String value or array of strings
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  uint64_t offset = 0;        // relative to the data section
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;

  int64_t n_elements() const;
  int64_t rows() const;  // product of dims[1..]
  int64_t cols() const { return dims.empty() ? 1 : dims[0]; }
  std::string shape_string() const;  // "{64, 256}"
};

class File {
 public:
  // Maps and validates `path`.
  static File open(const std::string& path);
  // Validates a buffer the caller keeps alive (used for tests and fuzzing).
  static File parse(std::span<const uint8_t> bytes, const std::string& display_name = "<memory>");

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return bytes_.size(); }
  uint64_t data_offset() const { return data_offset_; }
  std::span<const uint8_t> bytes() const { return bytes_; }  // the whole file

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed getters: throw Error("missing metadata key ...") when absent and
  // required, or on a type mismatch.
  const Value& get(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, const std::string& fallback) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;

  std::string architecture() const { return get_string("general.architecture"); }

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws when absent

 private:
  friend class Parser;
  File() = default;
  std::unique_ptr<MappedFile> mapping_;  // null when parsing caller memory
  std::span<const uint8_t> bytes_;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace flatline::gguf
