// `flatline synth`: writes a random-weight model with a published shape, for
// benchmarks (bench/) and tests. Its output is meaningless text.
#include <cstdio>

#include "cli/common.h"
#include "models/synthetic.h"
#include "util/error.h"

namespace flatline::cli {

void register_synth(CLI::App& app) {
  struct Options {
    std::string arch = "rwkv7", preset = "2.9b", type = "q8_0", out;
    uint64_t seed = 1;
    int64_t n_embd = 0, n_layer = 0, n_vocab = 0, n_ffn = 0, rank = 0;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("synth", "Write a random-weight GGUF with a real model's shape (for benchmarks)");
  sub->add_option("--arch", opts->arch, "Architecture: rwkv7, llama, gemma3, ouro, mamba, mamba2, granitehybrid, nemotron_h, jamba, llada, dream")->capture_default_str();
  sub->add_option("--preset", opts->preset,
                  "Size (rwkv7: 0.1b 0.4b 1.5b 2.9b 7.2b; llama: 1b 3b 8b; gemma3: 1b 4b; ouro: 1.4b 2.6b; mamba: 2.8b; "
                  "mamba2: 1.3b 2.7b; granitehybrid: micro tiny; nemotron_h: 9b; jamba: 1.5b; llada: 8b; dream: 7b)")
      ->capture_default_str();
  sub->add_option("--type", opts->type, "Weight type (q8_0, q4_0, q4_k, f16, ...)")->capture_default_str();
  sub->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  sub->add_option("-o,--out", opts->out, "Output file")->required();
  // 0 keeps the preset's value.
  bounded(sub->add_option("--n-embd", opts->n_embd, "Override the preset's width"), 0, 65536);
  bounded(sub->add_option("--n-layer", opts->n_layer, "Override the preset's layer count"), 0, 1024);
  bounded(sub->add_option("--n-vocab", opts->n_vocab, "Override the vocabulary size (>= 256)"), 0, 1 << 22);
  bounded(sub->add_option("--n-ffn", opts->n_ffn, "Override the feed-forward width"), 0, 1 << 20);
  bounded(sub->add_option("--lora-rank", opts->rank, "RWKV-7: use this rank for all four LoRA paths"), 0, 4096);
  sub->callback([opts] {
    auto type = dtype_from_name(opts->type);
    if (!type) throw Error("unknown weight type '" + opts->type + "'");
    SyntheticModel m = synthetic_preset(opts->arch, opts->preset);
    if (opts->n_embd) m.n_embd = opts->n_embd;
    if (opts->n_layer) m.n_layer = opts->n_layer;
    if (opts->n_vocab) m.n_vocab = opts->n_vocab;
    if (opts->n_ffn) m.n_ff = opts->n_ffn;
    if (opts->rank) m.rank_decay = m.rank_iclr = m.rank_value = m.rank_gate = opts->rank;
    m.type = *type;
    m.seed = opts->seed;
    write_synthetic_model(opts->out, m);
    std::fprintf(stderr, "wrote %s\n", opts->out.c_str());
  });
}

}  // namespace flatline::cli
