#include "gguf/gguf_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "util/atomic_file.h"
#include "util/error.h"

namespace flatline::gguf {

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.insert(out.end(), buf, buf + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace

void Writer::begin_kv(std::string_view key, ValueType type) {
  if (has_key(key)) throw Error("GGUF writer: duplicate metadata key " + std::string(key));
  keys_.emplace_back(key);
  ++kv_count_;
  put_string(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(type));
}

bool Writer::has_key(std::string_view key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void Writer::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw Error("GGUF writer: alignment must be a power of two");
  alignment_ = alignment;
  add_uint32("general.alignment", alignment);
}

void Writer::add_uint8(std::string_view k, uint8_t v) { begin_kv(k, ValueType::UInt8); put(kv_bytes_, v); }
void Writer::add_int8(std::string_view k, int8_t v) { begin_kv(k, ValueType::Int8); put(kv_bytes_, v); }
void Writer::add_uint16(std::string_view k, uint16_t v) { begin_kv(k, ValueType::UInt16); put(kv_bytes_, v); }
void Writer::add_int16(std::string_view k, int16_t v) { begin_kv(k, ValueType::Int16); put(kv_bytes_, v); }
void Writer::add_uint32(std::string_view k, uint32_t v) { begin_kv(k, ValueType::UInt32); put(kv_bytes_, v); }
void Writer::add_int32(std::string_view k, int32_t v) { begin_kv(k, ValueType::Int32); put(kv_bytes_, v); }
void Writer::add_uint64(std::string_view k, uint64_t v) { begin_kv(k, ValueType::UInt64); put(kv_bytes_, v); }
void Writer::add_int64(std::string_view k, int64_t v) { begin_kv(k, ValueType::Int64); put(kv_bytes_, v); }
void Writer::add_float32(std::string_view k, float v) { begin_kv(k, ValueType::Float32); put(kv_bytes_, v); }
void Writer::add_float64(std::string_view k, double v) { begin_kv(k, ValueType::Float64); put(kv_bytes_, v); }
void Writer::add_bool(std::string_view k, bool v) { begin_kv(k, ValueType::Bool); put<uint8_t>(kv_bytes_, v ? 1 : 0); }
void Writer::add_string(std::string_view k, std::string_view v) { begin_kv(k, ValueType::String); put_string(kv_bytes_, v); }

void Writer::add_string_array(std::string_view k, const std::vector<std::string>& v) {
  begin_kv(k, ValueType::Array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::String));
  put<uint64_t>(kv_bytes_, v.size());
  for (const auto& s : v) put_string(kv_bytes_, s);
}

void Writer::add_int32_array(std::string_view k, const std::vector<int32_t>& v) {
  begin_kv(k, ValueType::Array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::Int32));
  put<uint64_t>(kv_bytes_, v.size());
  for (int32_t x : v) put(kv_bytes_, x);
}

void Writer::add_uint32_array(std::string_view k, const std::vector<uint32_t>& v) {
  begin_kv(k, ValueType::Array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::UInt32));
  put<uint64_t>(kv_bytes_, v.size());
  for (uint32_t x : v) put(kv_bytes_, x);
}

void Writer::add_float32_array(std::string_view k, const std::vector<float>& v) {
  begin_kv(k, ValueType::Array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(ValueType::Float32));
  put<uint64_t>(kv_bytes_, v.size());
  for (float x : v) put(kv_bytes_, x);
}

void Writer::add_value(std::string_view k, const Value& v) {
  if (k == "general.alignment") {
    set_alignment(static_cast<uint32_t>(v.as_uint()));
    return;
  }
  begin_kv(k, v.type());
  auto put_scalar = [&](ValueType t, auto read) {
    switch (t) {
      case ValueType::UInt8: put<uint8_t>(kv_bytes_, static_cast<uint8_t>(read.i())); break;
      case ValueType::Int8: put<int8_t>(kv_bytes_, static_cast<int8_t>(read.i())); break;
      case ValueType::UInt16: put<uint16_t>(kv_bytes_, static_cast<uint16_t>(read.i())); break;
      case ValueType::Int16: put<int16_t>(kv_bytes_, static_cast<int16_t>(read.i())); break;
      case ValueType::UInt32: put<uint32_t>(kv_bytes_, static_cast<uint32_t>(read.i())); break;
      case ValueType::Int32: put<int32_t>(kv_bytes_, static_cast<int32_t>(read.i())); break;
      case ValueType::UInt64: put<uint64_t>(kv_bytes_, read.u()); break;
      case ValueType::Int64: put<int64_t>(kv_bytes_, read.i()); break;
      case ValueType::Float32: put<float>(kv_bytes_, static_cast<float>(read.f())); break;
      case ValueType::Float64: put<double>(kv_bytes_, read.f()); break;
      case ValueType::Bool: put<uint8_t>(kv_bytes_, read.i() ? 1 : 0); break;
      default: throw Error("GGUF writer: cannot copy value type");
    }
  };
  struct ScalarRead {
    const Value& v;
    int64_t i() const { return v.type() == ValueType::UInt64 ? static_cast<int64_t>(v.as_uint()) : v.as_int(); }
    uint64_t u() const { return v.as_uint(); }
    double f() const { return v.as_float(); }
  };
  struct ElemRead {
    const Value& v;
    uint64_t idx;
    int64_t i() const { return v.int_at(idx); }
    uint64_t u() const { return static_cast<uint64_t>(v.int_at(idx)); }
    double f() const { return v.float_at(idx); }
  };
  if (v.type() == ValueType::String) {
    put_string(kv_bytes_, v.as_string());
  } else if (v.is_array()) {
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(v.array_type()));
    put<uint64_t>(kv_bytes_, v.array_size());
    for (uint64_t i = 0; i < v.array_size(); ++i) {
      if (v.array_type() == ValueType::String) put_string(kv_bytes_, v.string_at(i));
      else put_scalar(v.array_type(), ElemRead{v, i});
    }
  } else {
    put_scalar(v.type(), ScalarRead{v});
  }
}

size_t Writer::checked_size(const std::string& name, DType type, const std::vector<int64_t>& dims) const {
  if (dims.empty() || dims.size() > kMaxDims) throw Error("GGUF writer: tensor " + name + " needs 1-4 dims");
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  size_t bytes = dims[0] == 0 ? 0 : row_bytes(type, dims[0]) * static_cast<size_t>(n / dims[0]);
  for (const auto& t : tensors_)
    if (t.name == name) throw Error("GGUF writer: duplicate tensor " + name);
  return bytes;
}

void Writer::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims, const void* data,
                        size_t n_bytes) {
  size_t expected = checked_size(name, type, dims);
  if (expected != n_bytes)
    throw Error("GGUF writer: tensor " + name + " has " + std::to_string(n_bytes) + " bytes, expected " +
                std::to_string(expected));
  PendingTensor t{name, type, dims, n_bytes, {}, nullptr, nullptr};
  t.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n_bytes);
  tensors_.push_back(std::move(t));
}

void Writer::add_tensor_deferred(const std::string& name, DType type, const std::vector<int64_t>& dims,
                                 Producer produce) {
  size_t n_bytes = checked_size(name, type, dims);
  tensors_.push_back(PendingTensor{name, type, dims, n_bytes, {}, std::move(produce), nullptr});
}

void Writer::add_tensor_streamed(const std::string& name, DType type, const std::vector<int64_t>& dims,
                                 StreamProducer stream) {
  size_t n_bytes = checked_size(name, type, dims);
  tensors_.push_back(PendingTensor{name, type, dims, n_bytes, {}, nullptr, std::move(stream)});
}

std::vector<uint8_t> Writer::header_bytes() const {
  std::vector<uint8_t> header;
  put<uint32_t>(header, kMagic);
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, kv_count_);
  header.insert(header.end(), kv_bytes_.begin(), kv_bytes_.end());
  uint64_t offset = 0;
  auto pad = [&](uint64_t v) { return (v + alignment_ - 1) / alignment_ * alignment_; };
  for (const auto& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(header, static_cast<uint64_t>(d));
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offset = pad(offset + t.n_bytes);
  }
  header.resize(pad(header.size()), 0);
  return header;
}

void Writer::emit(const std::function<void(const void*, size_t)>& sink) const {
  const std::vector<uint8_t> header = header_bytes();
  sink(header.data(), header.size());
  auto pad = [&](uint64_t v) { return (v + alignment_ - 1) / alignment_ * alignment_; };
  static const std::vector<uint8_t> zeros(4096, 0);
  std::vector<uint8_t> produced;
  for (const auto& t : tensors_) {
    size_t written = 0;
    if (t.stream) {
      t.stream([&](const void* data, size_t n) {
        if (written + n > t.n_bytes)
          throw Error("GGUF writer: tensor " + t.name + " streamed more than its " + std::to_string(t.n_bytes) + " bytes");
        sink(data, n);
        written += n;
      });
    } else {
      const std::vector<uint8_t>* bytes = &t.bytes;
      if (t.produce) {
        produced.clear();
        t.produce(produced);
        bytes = &produced;
      }
      if (bytes->size() == t.n_bytes) sink(bytes->data(), bytes->size());
      written = bytes->size();
    }
    if (written != t.n_bytes)
      throw Error("GGUF writer: tensor " + t.name + " produced " + std::to_string(written) + " bytes, expected " +
                  std::to_string(t.n_bytes));
    size_t padding = pad(written) - written;
    while (padding > 0) {
      size_t n = std::min(padding, zeros.size());
      sink(zeros.data(), n);
      padding -= n;
    }
  }
}

void Writer::write(const std::string& path) const {
  AtomicFileWriter out(path);
  emit([&](const void* data, size_t n) { out.write(data, n); });
  out.commit();
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  emit([&](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    out.insert(out.end(), p, p + n);
  });
  return out;
}

}  // namespace flatline::gguf
