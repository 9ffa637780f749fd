#include "convert/convert.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "convert/hf_model.h"
#include "convert/type_rules.h"
#include "gguf/gguf_writer.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"
#include "util/error.h"

namespace flatline::convert {

namespace {

namespace st = safetensors;
namespace fs = std::filesystem;

struct ArchEntry {
  const char* hf_architecture;
  const char* model_type;  // config.json model_type, when architectures is absent
  ArchPlan (*plan)(const HfModel&, TensorSource&);
};

const ArchEntry kArchitectures[] = {
    {"LlamaForCausalLM", "llama", plan_llama},
    {"LLaMAForCausalLM", nullptr, plan_llama},
    {"OuroForCausalLM", "ouro", plan_ouro},
    {"RWKV7ForCausalLM", "rwkv7", plan_rwkv7},
    {"Rwkv7ForCausalLM", nullptr, plan_rwkv7},
};

const ArchEntry& find_architecture(const HfModel& m) {
  for (const auto& a : kArchitectures) {
    if (m.architecture == a.hf_architecture || (a.model_type && m.architecture == a.model_type)) return a;
  }
  std::string known;
  for (const auto& a : supported_hf_architectures()) known += (known.empty() ? "" : ", ") + a;
  throw Error(m.config.path() + ": architecture '" + m.architecture + "' is not supported by flatline convert (supported: " +
              known + ")");
}

// llama.cpp's "auto" looks at the first 2-D tensor of the checkpoint.
DType first_matrix_type(const st::Checkpoint& c) {
  for (const st::TensorInfo* t : c.tensors()) {
    if (t->shape.size() < 2) continue;
    if (t->dtype == st::DType::BF16) return DType::BF16;
    if (t->dtype == st::DType::F16) return DType::F16;
    break;
  }
  return DType::F32;
}

std::string directory_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// gguf-py's Metadata: generation_config.json -> general.sampling.*.
void add_sampling(gguf::Writer& w, const HfConfig& g) {
  if (g.empty()) return;
  const auto integer = [&](const char* hf, const char* key) {
    if (g.raw().contains(hf) && g.raw()[hf].is_number_integer())
      w.add_int32(key, static_cast<int32_t>(g.raw()[hf].get<int64_t>()));
  };
  const auto number = [&](const char* hf, const char* key) {
    if (g.raw().contains(hf) && g.raw()[hf].is_number()) w.add_float32(key, static_cast<float>(g.raw()[hf].get<double>()));
  };
  if (g.raw().contains("sequence") && g.raw()["sequence"].is_string())
    w.add_string("general.sampling.sequence", g.raw()["sequence"].get<std::string>());
  integer("top_k", "general.sampling.top_k");
  number("top_p", "general.sampling.top_p");
  number("min_p", "general.sampling.min_p");
  number("xtc_probability", "general.sampling.xtc_probability");
  number("xtc_threshold", "general.sampling.xtc_threshold");
  number("temperature", "general.sampling.temp");
  integer("penalty_last_n", "general.sampling.penalty_last_n");
  number(g.raw().contains("penalty_repeat") ? "penalty_repeat" : "repetition_penalty", "general.sampling.penalty_repeat");
  integer("mirostat", "general.sampling.mirostat");
  number("mirostat_tau", "general.sampling.mirostat_tau");
  number("mirostat_eta", "general.sampling.mirostat_eta");
}

size_t tensor_bytes(const PlannedTensor& t) { return row_bytes(t.type, t.cols()) * static_cast<size_t>(t.rows()); }

void check_cancel(const ConvertOptions& o) {
  if (o.cancel && o.cancel->load()) throw Error("conversion interrupted");
}

// Every output row must lie inside its source tensor; checked once, before
// anything is written, so the parallel row loop below cannot fail.
void check_rows(const PlannedTensor& t) {
  if (!t.row_source) return;
  for (int64_t r = 0; r < t.rows(); ++r) {
    const RowSource src = t.row_source(r);
    if (!src.tensor || src.first_element < 0 || src.first_element + t.cols() > src.tensor->n_elements())
      throw Error("internal: row " + std::to_string(r) + " of " + t.name + " is outside its source tensor");
    source_dtype(*src.tensor);
  }
}

// Converts rows [begin, end) of `t` into `out` (row r at (r - begin) rows
// in): a raw copy when the source already has the output type, else
// through f32 and quantize_row. Rows are split over the pool (quantizing
// K-quants is the slow part of a conversion).
void convert_rows(const PlannedTensor& t, int64_t begin, int64_t end, uint8_t* out, ThreadPool& pool,
                  const ConvertOptions& o) {
  const int64_t cols = t.cols();
  const size_t out_row = row_bytes(t.type, cols);
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1));
  pool.parallel_chunks(end - begin, grain, [&](int64_t from, int64_t to) {
    if (o.cancel && o.cancel->load()) return;
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = begin + from; r < begin + to; ++r) {
      uint8_t* dst = out + static_cast<size_t>(r - begin) * out_row;
      if (!t.row_source) {
        quantize_row(t.type, t.values.data() + r * cols, dst, cols);
        continue;
      }
      const RowSource src = t.row_source(r);
      const DType type = source_dtype(*src.tensor);
      const uint8_t* p = src.tensor->data + static_cast<size_t>(src.first_element) * traits(type).block_bytes;
      if (type == t.type) {
        std::memcpy(dst, p, out_row);
      } else {
        dequantize_row(type, p, row.data(), cols);
        quantize_row(t.type, row.data(), dst, cols);
      }
    }
  });
  check_cancel(o);
}

// Drops the source pages rows [begin, end) read (they are read once).
void release_rows(const PlannedTensor& t, int64_t begin, int64_t end, const st::Checkpoint& weights) {
  if (!t.row_source) return;
  for (int64_t r = begin; r < end;) {
    const RowSource first = t.row_source(r);
    const size_t elem = traits(source_dtype(*first.tensor)).block_bytes;
    uint64_t lo = static_cast<uint64_t>(first.first_element) * elem, hi = lo + static_cast<uint64_t>(t.cols()) * elem;
    int64_t next = r + 1;
    for (; next < end; ++next) {  // rows from the same tensor: one range
      const RowSource s = t.row_source(next);
      if (s.tensor != first.tensor) break;
      lo = std::min<uint64_t>(lo, static_cast<uint64_t>(s.first_element) * elem);
      hi = std::max<uint64_t>(hi, static_cast<uint64_t>(s.first_element + t.cols()) * elem);
    }
    weights.release(*first.tensor, lo, hi);
    r = next;
  }
}

// Streams the tensor in pieces of about kPieceBytes of output, so memory
// stays at one piece (plus the source pages being read) whatever the tensor.
constexpr size_t kPieceBytes = 8u << 20;

void stream_tensor(const PlannedTensor& t, const gguf::Writer::Sink& sink, ThreadPool& pool,
                   const st::Checkpoint& weights, const ConvertOptions& o,
                   const std::function<void(uint64_t)>& piece_written) {
  const size_t out_row = row_bytes(t.type, t.cols());
  const int64_t rows_per_piece = std::max<int64_t>(1, static_cast<int64_t>(kPieceBytes / std::max<size_t>(out_row, 1)));
  std::vector<uint8_t> piece;
  for (int64_t begin = 0; begin < t.rows(); begin += rows_per_piece) {
    const int64_t end = std::min(t.rows(), begin + rows_per_piece);
    piece.resize(static_cast<size_t>(end - begin) * out_row);
    convert_rows(t, begin, end, piece.data(), pool, o);
    sink(piece.data(), piece.size());
    release_rows(t, begin, end, weights);
    piece_written(piece.size());
  }
}

}  // namespace

std::vector<std::string> supported_hf_architectures() {
  std::vector<std::string> out;
  for (const auto& a : kArchitectures) out.push_back(a.hf_architecture);
  return out;
}

std::string size_label(int64_t n) {
  double scaled;
  const char* suffix;
  if (n > 1e12) {
    scaled = n * 1e-12, suffix = "T";
  } else if (n > 1e9) {
    scaled = n * 1e-9, suffix = "B";
  } else if (n > 1e6) {
    scaled = n * 1e-6, suffix = "M";
  } else {
    scaled = n * 1e-3, suffix = "K";
  }
  // Python: fix = max(2 - len(str(round(x)).lstrip('0')), 0); f"{x:.{fix}f}"
  const long long rounded = std::llrint(scaled);  // round half to even, as Python's round()
  const int digits = rounded == 0 ? 0 : static_cast<int>(std::to_string(rounded).size());
  const int fix = std::max(2 - digits, 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", fix, scaled, suffix);
  return buf;
}

HfModel HfModel::open(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a directory (expected a Hugging Face model directory)");
  HfModel m;
  m.dir = dir;
  const std::string config = dir + "/config.json";
  if (!fs::exists(config)) throw Error(dir + ": no config.json");
  m.config = HfConfig::load(config);
  m.generation_config = HfConfig::load_optional(dir + "/generation_config.json");
  const auto& raw = m.config.raw();
  if (raw.contains("architectures") && raw["architectures"].is_array() && !raw["architectures"].empty() &&
      raw["architectures"][0].is_string()) {
    m.architecture = raw["architectures"][0].get<std::string>();
  } else if (auto type = m.config.find_string("model_type")) {
    m.architecture = *type;
  } else {
    m.config.fail("no 'architectures' or 'model_type' to tell the architecture");
  }
  m.weights = st::Checkpoint::open_dir(dir);
  return m;
}

ConvertSummary convert_hf_model(const std::string& dir, const std::string& out_path, const ConvertOptions& options) {
  if (fs::is_directory(out_path)) throw Error(out_path + ": is a directory (expected the output .gguf file name)");
  HfModel model = HfModel::open(dir);
  const ArchEntry& entry = find_architecture(model);
  TensorSource source(model.weights);
  ArchPlan plan = entry.plan(model, source);
  source.check_all_used(plan.arch);
  const OutputType type = parse_output_type(options.type, first_matrix_type(model.weights));
  assign_types(plan.tensors, type, plan.n_layer);

  int64_t parameters = 0;
  for (const auto& t : plan.tensors) parameters += t.n_elements();
  gguf::Writer w;
  w.add_string("general.architecture", plan.arch);
  w.add_string("general.type", "model");
  add_sampling(w, model.generation_config);
  w.add_string("general.name", options.name.empty() ? directory_name(dir) : options.name);
  w.add_string("general.size_label", size_label(parameters));
  plan.add_hparams(w);
  w.add_uint32("general.file_type", type.file_type);
  w.add_uint32("general.quantization_version", 2);
  plan.add_tokenizer(w);

  ConvertSummary summary;
  summary.architecture = plan.arch;
  summary.hf_architecture = model.architecture;
  summary.tensors = plan.tensors.size();
  summary.input_bytes = model.weights.total_bytes();
  summary.notes = plan.notes;
  for (const auto& t : plan.tensors) {
    summary.output_bytes += tensor_bytes(t);
    ++summary.types[std::string(dtype_name(t.type))];
  }
  for (const auto& t : plan.tensors) check_rows(t);
  ThreadPool pool(options.threads);
  uint64_t done = 0;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor* t = &plan.tensors[i];
    w.add_tensor_streamed(t->name, t->type, t->dims,
                          [t, i, &done, &options, &model, &summary, &pool](const gguf::Writer::Sink& sink) {
                            check_cancel(options);
                            if (options.progress)
                              options.progress({i, summary.tensors, t->name, done, summary.output_bytes, true});
                            stream_tensor(*t, sink, pool, model.weights, options, [&](uint64_t n) {
                              done += n;
                              if (options.progress)
                                options.progress({i, summary.tensors, t->name, done, summary.output_bytes, false});
                            });
                          });
  }
  w.write(out_path);
  if (options.progress) {
    options.progress({summary.tensors, summary.tensors, "", summary.output_bytes, summary.output_bytes});
  }
  return summary;
}

}  // namespace flatline::convert
