#include "convert/requantize.h"

#include <charconv>

#include "convert/type_rules.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tensor/kernels.h"
#include "util/error.h"

namespace flatline::convert {

RequantizeSummary requantize_gguf(const std::string& in_path, const std::string& out_path, const std::string& type,
                                  const std::function<void(const std::string&, DType, DType)>& on_tensor) {
  if (type == "auto" || type == "f32") throw Error("cannot quantize to '" + type + "' (supported: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)");
  OutputType target;
  try {
    target = parse_output_type(type, DType::F32);
  } catch (const Error&) {
    throw Error("cannot quantize to '" + type + "' (supported: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)");
  }
  const DType goal = target.quant ? *target.quant : target.float_type;
  gguf::File in = gguf::File::open(in_path);
  std::vector<PlannedTensor> plan;
  int64_t n_layer = 0;
  for (const auto& t : in.tensors()) {
    PlannedTensor p;
    p.name = t.name;
    p.dims = t.dims;
    p.type = t.type;
    plan.push_back(std::move(p));
    int layer = -1;
    if (std::sscanf(t.name.c_str(), "blk.%d.", &layer) == 1) n_layer = std::max<int64_t>(n_layer, layer + 1);
  }
  assign_requantized_types(plan, goal, n_layer);

  gguf::Writer w;
  for (const auto& [key, value] : in.metadata())
    if (key != "general.file_type") w.add_value(key, value);
  w.add_uint32("general.file_type", target.file_type);
  RequantizeSummary summary;
  for (size_t i = 0; i < plan.size(); ++i) {
    const gguf::TensorInfo& src = in.tensors()[i];
    const DType to = plan[i].type;
    summary.bytes_before += src.n_bytes;
    if (to == src.type) {
      w.add_tensor(src.name, src.type, src.dims, src.data, src.n_bytes);
      summary.bytes_after += src.n_bytes;
      continue;
    }
    ++summary.tensors_changed;
    summary.bytes_after += row_bytes(to, src.cols()) * static_cast<size_t>(src.rows());
    const gguf::TensorInfo* t = &src;
    w.add_tensor_deferred(src.name, to, src.dims, [t, to, &on_tensor](std::vector<uint8_t>& out) {
      const int64_t cols = t->cols();
      const size_t in_stride = row_bytes(t->type, cols), out_stride = row_bytes(to, cols);
      std::vector<float> row(static_cast<size_t>(cols));
      out.resize(out_stride * static_cast<size_t>(t->rows()));
      for (int64_t r = 0; r < t->rows(); ++r) {
        dequantize_row(t->type, t->data + r * in_stride, row.data(), cols);
        quantize_row(to, row.data(), out.data() + r * out_stride, cols);
      }
      if (on_tensor) on_tensor(t->name, t->type, to);
    });
  }
  w.write(out_path);
  return summary;
}

}  // namespace flatline::convert
