// GGUF v3 writer: metadata and tensors in, one aligned file out. The file is
// written to a temporary name and renamed, so a crash never leaves a
// half-written model under the final name.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"

namespace flatline::gguf {

class Writer {
 public:
  void set_alignment(uint32_t alignment);  // also written as general.alignment

  void add_uint8(std::string_view key, uint8_t v);
  void add_int8(std::string_view key, int8_t v);
  void add_uint16(std::string_view key, uint16_t v);
  void add_int16(std::string_view key, int16_t v);
  void add_uint32(std::string_view key, uint32_t v);
  void add_int32(std::string_view key, int32_t v);
  void add_uint64(std::string_view key, uint64_t v);
  void add_int64(std::string_view key, int64_t v);
  void add_float32(std::string_view key, float v);
  void add_float64(std::string_view key, double v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_int32_array(std::string_view key, const std::vector<int32_t>& v);
  void add_uint32_array(std::string_view key, const std::vector<uint32_t>& v);
  void add_float32_array(std::string_view key, const std::vector<float>& v);
  // Copies a value read from another file, keeping its exact type.
  void add_value(std::string_view key, const Value& v);

  // dims in ggml order (dims[0] = row length). The bytes are copied.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims, const void* data,
                  size_t n_bytes);
  // A tensor whose bytes are produced only while the file is written, one
  // tensor at a time, so converting a model never holds all of it in memory.
  // `produce` must fill exactly the tensor's byte size.
  using Producer = std::function<void(std::vector<uint8_t>& bytes)>;
  void add_tensor_deferred(const std::string& name, DType type, const std::vector<int64_t>& dims, Producer produce);
  // Same, but the bytes are handed to `sink` piece by piece as they are made,
  // so not even one whole tensor has to be in memory. `stream` must pass
  // exactly the tensor's byte size in all.
  using Sink = std::function<void(const void* data, size_t n)>;
  using StreamProducer = std::function<void(const Sink& sink)>;
  void add_tensor_streamed(const std::string& name, DType type, const std::vector<int64_t>& dims,
                           StreamProducer stream);

  bool has_key(std::string_view key) const;
  void write(const std::string& path) const;  // throws Error
  // The whole file in memory (tests, vocabulary-only files); deferred
  // tensors are produced as for write().
  std::vector<uint8_t> to_bytes() const;

 private:
  void begin_kv(std::string_view key, ValueType type);
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> dims;
    size_t n_bytes = 0;
    std::vector<uint8_t> bytes;  // filled now, or by `produce` at write time
    Producer produce;
    StreamProducer stream;
  };
  size_t checked_size(const std::string& name, DType type, const std::vector<int64_t>& dims) const;
  std::vector<uint8_t> header_bytes() const;  // through the padding before the first tensor
  // Calls sink(data, n) for the header and every tensor's bytes and padding.
  void emit(const std::function<void(const void*, size_t)>& sink) const;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t kv_count_ = 0;
  std::vector<std::string> keys_;
  std::vector<uint8_t> kv_bytes_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace flatline::gguf
