// `flatline quantize IN OUT TYPE`: re-encode the weight matrices of a GGUF
// model. 1-D tensors (norms, biases, mixing vectors) stay as they are; a
// matrix whose rows are not a multiple of the type's block size falls back
// to Q8_0, then F16.
#include <cstdio>

#include "cli/common.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flatline::cli {

namespace {

// llama.cpp's general.file_type values (enum llama_ftype).
int file_type_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q4_K: return 14;  // every matrix Q4_K: closest to llama.cpp's Q4_K_S
    case DType::Q5_K: return 16;  // likewise Q5_K_S
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

// Small 2-D weights that llama-quantize leaves in their original type too
// (RWKV's LoRA matrices): quantizing them saves little and costs accuracy.
bool keep_unquantized(const std::string& name) {
  for (const char* part : {"time_mix_w1.", "time_mix_w2.", "time_mix_a1.", "time_mix_a2.", "time_mix_v1.",
                           "time_mix_v2.", "time_mix_g1.", "time_mix_g2."})
    if (name.find(part) != std::string::npos) return true;
  return false;
}

DType choose_type(const gguf::TensorInfo& t, DType target) {
  if (t.dims.size() < 2 || t.rows() <= 1) return t.type;  // vectors keep their type
  if (keep_unquantized(t.name)) return t.type;
  if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16) return t.type;  // already quantized
  for (DType candidate : {target, DType::Q8_0, DType::F16}) {
    if (t.cols() % traits(candidate).block_size == 0 && can_quantize(candidate)) return candidate;
  }
  return t.type;
}

}  // namespace

void register_quantize(CLI::App& app) {
  struct Options {
    std::string in, out, type;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("quantize", "Re-encode a model's weight matrices (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, f16, bf16)");
  sub->add_option("input", opts->in, "Source GGUF (F32/F16/BF16 weights)")->required();
  sub->add_option("output", opts->out, "Destination GGUF")->required();
  sub->add_option("type", opts->type, "Target type")->required();
  sub->callback([opts] {
    auto target = dtype_from_name(opts->type);
    if (!target || !can_quantize(*target))
      throw Error("cannot quantize to '" + opts->type + "' (supported: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, f16, bf16)");
    gguf::File in = gguf::File::open(opts->in);
    gguf::Writer w;
    for (const auto& [key, value] : in.metadata())
      if (key != "general.file_type") w.add_value(key, value);
    w.add_uint32("general.file_type", static_cast<uint32_t>(file_type_id(*target)));
    uint64_t before = 0, after = 0;
    for (const auto& t : in.tensors()) {
      DType type = choose_type(t, *target);
      before += t.n_bytes;
      if (type == t.type) {
        w.add_tensor(t.name, t.type, t.dims, t.data, t.n_bytes);
        after += t.n_bytes;
        continue;
      }
      const gguf::TensorInfo* src = &t;
      w.add_tensor_deferred(t.name, type, t.dims, [src, type](std::vector<uint8_t>& out) {
        const int64_t cols = src->cols();
        const size_t in_stride = row_bytes(src->type, cols), out_stride = row_bytes(type, cols);
        std::vector<float> row(static_cast<size_t>(cols));
        out.resize(out_stride * static_cast<size_t>(src->rows()));
        for (int64_t r = 0; r < src->rows(); ++r) {
          dequantize_row(src->type, src->data + r * in_stride, row.data(), cols);
          quantize_row(type, row.data(), out.data() + r * out_stride, cols);
        }
        std::fprintf(stderr, "%-40s %-5s -> %-5s %s\n", src->name.c_str(), traits(src->type).name, traits(type).name,
                     src->shape_string().c_str());
      });
      after += row_bytes(type, t.cols()) * static_cast<size_t>(t.rows());
    }
    w.write(opts->out);
    std::fprintf(stderr, "wrote %s: tensors %s -> %s\n", opts->out.c_str(), format_bytes(before).c_str(),
                 format_bytes(after).c_str());
  });
}

}  // namespace flatline::cli
