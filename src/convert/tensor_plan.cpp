#include "convert/tensor_plan.h"

#include "util/error.h"

namespace flatline::convert {

namespace st = safetensors;

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> ggml_dims(const std::vector<int64_t>& hf_shape) {
  if (hf_shape.empty()) return {1};
  return std::vector<int64_t>(hf_shape.rbegin(), hf_shape.rend());
}

int64_t product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

}  // namespace

int64_t PlannedTensor::rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

DType source_dtype(const st::TensorInfo& t) {
  switch (t.dtype) {
    case st::DType::F32: return DType::F32;
    case st::DType::F16: return DType::F16;
    case st::DType::BF16: return DType::BF16;
    default:
      throw Error(t.file + ": tensor '" + t.name + "' has dtype " + st::dtype_name(t.dtype) +
                  "; flatline convert reads F32, F16 and BF16 tensors");
  }
}

DType PlannedTensor::source_type() const { return inputs.empty() ? DType::F32 : source_dtype(*inputs.front()); }

PlannedTensor plan_copy(const std::string& name, const st::TensorInfo& t) {
  return plan_reshape(name, t, ggml_dims(t.shape));
}

PlannedTensor plan_reshape(const std::string& name, const st::TensorInfo& t, std::vector<int64_t> dims) {
  if (product(dims) != t.n_elements()) {
    throw Error("internal: " + name + " reshapes " + t.name + " " + t.shape_string() + " to " + shape_string(dims));
  }
  PlannedTensor p;
  p.name = name;
  p.dims = std::move(dims);
  p.origin = t.name;
  p.inputs = {&t};
  const int64_t cols = p.dims[0];
  p.row_source = [&t, cols](int64_t r) { return RowSource{&t, r * cols}; };
  return p;
}

PlannedTensor plan_row_map(const std::string& name, const st::TensorInfo& t, std::function<int64_t(int64_t)> src_row,
                           const std::string& how) {
  PlannedTensor p = plan_copy(name, t);
  p.origin = t.name + " (" + how + ")";
  const int64_t cols = p.dims[0];
  p.row_source = [&t, cols, src_row = std::move(src_row)](int64_t r) { return RowSource{&t, src_row(r) * cols}; };
  return p;
}

PlannedTensor plan_stack(const std::string& name, std::vector<int64_t> dims, std::vector<const st::TensorInfo*> parts) {
  PlannedTensor p;
  p.name = name;
  p.dims = std::move(dims);
  for (const st::TensorInfo* t : parts) {
    if (t->n_elements() != p.dims[0]) {
      throw Error("internal: " + name + " stacks " + t->name + " " + t->shape_string() + " as a row of " +
                  std::to_string(p.dims[0]));
    }
    p.origin += (p.origin.empty() ? "stack of " : ", ") + t->name;
  }
  if (static_cast<int64_t>(parts.size()) != p.rows()) throw Error("internal: " + name + " stacks the wrong number of rows");
  p.inputs = parts;
  p.row_source = [parts](int64_t r) { return RowSource{parts[static_cast<size_t>(r)], 0}; };
  return p;
}

PlannedTensor plan_values(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
                          const std::string& origin) {
  PlannedTensor p;
  p.name = name;
  p.dims = std::move(dims);
  p.values = std::move(values);
  p.origin = origin;
  if (static_cast<int64_t>(p.values.size()) != p.n_elements()) throw Error("internal: " + name + " has the wrong size");
  return p;
}

int64_t rope_permuted_source_row(int64_t row, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  const int64_t head = row / head_dim;
  const int64_t in_head = row % head_dim;
  const int64_t pair = in_head / 2;  // i
  const int64_t which = in_head % 2;  // j
  return head * head_dim + which * half + pair;
}

const st::TensorInfo& TensorSource::take(const std::string& name, const std::vector<int64_t>& shape,
                                         const std::string& why) {
  const st::TensorInfo* t = take_optional(name, shape, why);
  if (!t) {
    throw Error(checkpoint_.description() + ": missing tensor '" + name + "' (expected shape " + shape_string(shape) +
                (why.empty() ? "" : ": " + why) + ")");
  }
  return *t;
}

const st::TensorInfo* TensorSource::take_optional(const std::string& name, const std::vector<int64_t>& shape,
                                                  const std::string& why) {
  const st::TensorInfo* t = checkpoint_.find(name);
  if (!t) return nullptr;
  if (t->shape != shape) {
    throw Error(t->file + ": tensor '" + name + "' has shape " + t->shape_string() + ", but config.json implies " +
                shape_string(shape) + (why.empty() ? "" : " (" + why + ")"));
  }
  source_dtype(*t);  // refuses other dtypes
  used_.insert(name);
  return t;
}

void TensorSource::skip_suffix(const std::string& suffix) {
  for (const st::TensorInfo* t : checkpoint_.tensors()) {
    if (t->name.size() >= suffix.size() && t->name.compare(t->name.size() - suffix.size(), suffix.size(), suffix) == 0)
      used_.insert(t->name);
  }
}

void TensorSource::check_all_used(const std::string& architecture) const {
  std::vector<std::string> unexpected;
  for (const st::TensorInfo* t : checkpoint_.tensors()) {
    if (!used_.count(t->name)) unexpected.push_back(t->name);
  }
  if (unexpected.empty()) return;
  std::string list;
  for (size_t i = 0; i < unexpected.size() && i < 5; ++i) list += (i ? ", " : "") + unexpected[i];
  if (unexpected.size() > 5) list += ", ... (" + std::to_string(unexpected.size()) + " in all)";
  throw Error(checkpoint_.description() + ": tensors that are not part of the " + architecture +
              " layout (the config and the checkpoint disagree?): " + list);
}

}  // namespace flatline::convert
