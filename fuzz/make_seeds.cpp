// Writes the binary seeds of fuzz/corpus/ (small valid GGUF and safetensors
// files a fuzzer mutates from): make_fuzz_seeds fuzz/corpus. The text seeds
// (tokenizer, grammar, json_schema, jinja) are written by hand.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"

namespace fs = std::filesystem;
using flatline::DType;

namespace {

void save(const fs::path& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::vector<uint8_t> gguf_every_value_type() {
  flatline::gguf::Writer w;
  w.add_string("general.architecture", "llama");
  w.add_uint8("u8", 1);
  w.add_int8("i8", -1);
  w.add_uint16("u16", 2);
  w.add_int16("i16", -2);
  w.add_uint32("llama.block_count", 1);
  w.add_int32("i32", -3);
  w.add_uint64("llama.context_length", 64);
  w.add_int64("i64", -4);
  w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_float64("f64", 0.5);
  w.add_bool("b", true);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "<s>"});
  w.add_int32_array("tokenizer.ggml.token_type", {1, 1, 3});
  w.add_float32_array("tokenizer.ggml.scores", {0.f, -1.f, 0.f});
  std::vector<float> f32(8, 1.0f);
  w.add_tensor("token_embd.weight", DType::F32, {4, 2}, f32.data(), f32.size() * 4);
  std::vector<uint8_t> q8(34 * 2, 0);
  w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {32, 2}, q8.data(), q8.size());
  std::vector<uint16_t> f16(4, 0x3c00);
  w.add_tensor("output_norm.weight", DType::F16, {4}, f16.data(), f16.size() * 2);
  return w.to_bytes();
}

std::vector<uint8_t> gguf_metadata_only() {
  flatline::gguf::Writer w;
  w.set_alignment(64);
  w.add_string("general.architecture", "rwkv7");
  w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}");
  return w.to_bytes();
}

std::vector<uint8_t> safetensors_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0x3f);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_fuzz_seeds CORPUS_DIR\n";
    return 2;
  }
  fs::path dir(argv[1]);
  save(dir / "gguf" / "every_value_type.gguf", gguf_every_value_type());
  save(dir / "gguf" / "metadata_only.gguf", gguf_metadata_only());
  save(dir / "safetensors" / "two_tensors.safetensors",
       safetensors_file(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}})", 24));
  save(dir / "safetensors" / "empty.safetensors", safetensors_file("{}", 0));
  save(dir / "safetensors" / "scalar.safetensors",
       safetensors_file(R"({"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})", 8));
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}
