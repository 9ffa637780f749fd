// `flatline info`: what a GGUF file is and what running it will cost.
#include <cstdio>
#include <map>

#include "cli/common.h"
#include "gguf/gguf.h"
#include "runtime/model_catalog.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/system_info.h"

namespace flatline::cli {

namespace {

struct InfoOptions {
  ModelOptions model;
  bool metadata = false;
  bool tensors = false;
};

void print_file_summary(const gguf::File& f) {
  std::printf("file:            %s\n", f.path().c_str());
  std::printf("file size:       %s (GGUF v%u, %zu tensors, %zu metadata keys)\n", format_bytes(f.file_size()).c_str(),
              f.version(), f.tensors().size(), f.metadata().size());
  std::printf("architecture:    %s\n", f.get_string("general.architecture", "(none)").c_str());
  std::map<std::string, std::pair<int, uint64_t>> types;
  for (const auto& t : f.tensors()) {
    auto& e = types[flatline::traits(t.type).name];
    e.first++;
    e.second += t.n_bytes;
  }
  std::string list;
  for (const auto& [name, e] : types)
    list += (list.empty() ? "" : ", ") + name + " x" + std::to_string(e.first) + " (" + format_bytes(e.second) + ")";
  if (!list.empty()) std::printf("tensor types:    %s\n", list.c_str());
}

void print_tokenizer(const gguf::File& f) {
  if (!f.has("tokenizer.ggml.model")) return;
  auto tok = Tokenizer::from_gguf(f);
  std::printf("tokenizer:       %s, %d tokens, bos %d, eos %d, eot %d, add_bos %s\n",
              f.get_string("tokenizer.ggml.model").c_str(), tok->n_vocab(), tok->bos_id(), tok->eos_id(), tok->eot_id(),
              tok->add_bos() ? "yes" : "no");
  std::printf("chat template:   %s\n", std::string(ChatTemplate::from_gguf(f).name()).c_str());
}

}  // namespace

void register_info(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  auto* sub = app.add_subcommand("info", "Describe a GGUF model: architecture, size, memory it needs");
  opts->model.add_to(*sub);
  sub->add_flag("--metadata", opts->metadata, "Also list every metadata key");
  sub->add_flag("--tensors", opts->tensors, "Also list every tensor");
  sub->callback([opts] {
    const InfoOptions& o = *opts;
    auto file = std::make_shared<gguf::File>(gguf::File::open(o.model.model_path));
    print_file_summary(*file);
    if (o.metadata)
      for (const auto& [key, value] : file->metadata()) std::printf("  %-48s %s\n", key.c_str(), value.to_string().c_str());
    if (o.tensors)
      for (const auto& t : file->tensors())
        std::printf("  %-40s %-6s %s\n", t.name.c_str(), flatline::traits(t.type).name, t.shape_string().c_str());
    if (file->tensors().empty()) {
      std::printf("weights:         none (vocabulary-only file)\n");
      print_tokenizer(*file);
      return;
    }
    LoadOptions lo;
    lo.pool = std::make_shared<ThreadPool>(1);
    lo.max_batch = o.model.batch;
    lo.kv_type = parse_kv_type(o.model.kv_type);
    lo.family = o.model.family_options();  // --kv-share and --loops change the state's size
    auto model = load_model(file, lo);
    const ModelInfo& mi = model->info();
    MemoryBudget budget = o.model.budget();
    std::printf("name:            %s\n", mi.name.c_str());
    std::printf("parameters:      %s (%s per token read at decode)\n", human_parameter_count(mi.n_params).c_str(),
                format_bytes(mi.bytes_per_token).c_str());
    std::printf("weight type:     %s\n", mi.file_type.c_str());
    std::printf("shape:           %lld layers, n_embd %lld, vocab %lld\n", static_cast<long long>(mi.n_layer),
                static_cast<long long>(mi.n_embd), static_cast<long long>(mi.n_vocab));
    std::printf("memory:\n");
    std::printf("  weights        %s (memory-mapped)\n", format_bytes(mi.weight_bytes).c_str());
    std::printf("  workspace      %s (for %lld-token prompt chunks)\n", format_bytes(model->workspace_bytes()).c_str(),
                static_cast<long long>(o.model.batch));
    const ModelTraits& tr = model->traits();
    if (tr.generation == GenerationKind::MaskedDiffusion) {
      // Every step is one pass over prompt + generated positions, all in one
      // chunk, and keeps the logits of the rows it fills.
      std::printf("  canvas         %s per 256 positions (activations past the prompt chunk + logits), %s for a %lld-position canvas\n",
                  format_bytes(model->canvas_bytes(256)).c_str(), format_bytes(model->canvas_bytes(o.model.ctx)).c_str(),
                  static_cast<long long>(o.model.ctx));
    }
    if (!tr.has_context_limit) {
      std::printf("  state          %s per conversation, whatever its length (recurrent)\n",
                  format_bytes(tr.state_fixed_bytes).c_str());
    } else {
      // Sliding-window layers stop growing at their window: the per-token
      // cost is what the other attention layers add for each further token.
      std::printf("  state          %s fixed%s + %s per token of context (KV), %s for a %lld-token context\n",
                  format_bytes(tr.state_fixed_bytes).c_str(),
                  model->state_layout().has_recurrent() ? " (recurrent layers and window KV)" : "",
                  format_bytes(tr.state_bytes_per_token).c_str(), format_bytes(model->state_bytes(o.model.ctx)).c_str(),
                  static_cast<long long>(o.model.ctx));
      // Largest context whose weights + workspace + state fit the budget.
      auto needs = [&](int64_t n) { return model->resident_bytes(n); };
      int64_t max_ctx = 0;
      if (needs(1) <= budget.limit()) {
        int64_t lo = 1, hi = 1;
        while (hi < (int64_t{1} << 26) && needs(hi) <= budget.limit()) lo = hi, hi *= 2;
        while (hi - lo > 1) {
          const int64_t mid = lo + (hi - lo) / 2;
          (needs(mid) <= budget.limit() ? lo : hi) = mid;
        }
        max_ctx = lo;
      }
      if (mi.n_ctx_train > 0) max_ctx = std::min<int64_t>(max_ctx, mi.n_ctx_train);
      std::printf("  max context    %lld tokens fit in the %s budget (trained for %lld)\n",
                  static_cast<long long>(max_ctx), format_bytes(budget.limit()).c_str(),
                  static_cast<long long>(mi.n_ctx_train));
    }
    uint64_t total = model->resident_bytes(o.model.ctx);
    std::printf("  total          %s for one conversation (budget %s)\n", format_bytes(total).c_str(),
                format_bytes(budget.limit()).c_str());
    std::printf("  budget         %s: %s\n", format_bytes(budget.limit()).c_str(), budget.source().c_str());
    const ThreadDefault td = default_thread_count();
    std::printf("threads:         %d by default (%s); -t overrides\n", td.threads, td.reason.c_str());
    print_tokenizer(*file);
  });
}

}  // namespace flatline::cli
