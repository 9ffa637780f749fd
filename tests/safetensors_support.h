// Test helper: writes safetensors files (well-formed ones for checkpoints the
// tests build, and raw header + data for hostile ones). Header layout as the
// reference writer makes it: u64 LE length, JSON padded with spaces to a
// multiple of 8, then the data.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/fp16.h"

namespace flatline::test {

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline StTensor st_f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
  StTensor t{name, "F32", std::move(shape), std::vector<uint8_t>(values.size() * 4)};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

inline StTensor st_bf16(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
  StTensor t{name, "BF16", std::move(shape), std::vector<uint8_t>(values.size() * 2)};
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t b = fp32_to_bf16(values[i]);
    std::memcpy(t.bytes.data() + 2 * i, &b, 2);
  }
  return t;
}

inline StTensor st_f16(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
  StTensor t{name, "F16", std::move(shape), std::vector<uint8_t>(values.size() * 2)};
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = fp32_to_fp16(values[i]);
    std::memcpy(t.bytes.data() + 2 * i, &h, 2);
  }
  return t;
}

// A file from a header text and a data section, byte for byte.
inline std::vector<uint8_t> st_raw(const std::string& header, const std::vector<uint8_t>& data,
                                   uint64_t declared_length = UINT64_MAX) {
  const uint64_t len = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline std::vector<uint8_t> st_build(const std::vector<StTensor>& tensors,
                                     const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint8_t> data;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  return st_raw(text, data);
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << text;
}

}  // namespace flatline::test
