// `flatline quantize IN OUT TYPE`: re-encode the weight matrices of a GGUF
// model with llama-quantize's rules (convert/requantize.h).
#include <cstdio>

#include "cli/common.h"
#include "convert/requantize.h"
#include "util/error.h"

namespace flatline::cli {

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
    auto summary = convert::requantize_gguf(opts->in, opts->out, opts->type, [](const std::string& name, DType from, DType to) {
      std::fprintf(stderr, "%-40s %-5s -> %s\n", name.c_str(), traits(from).name, traits(to).name);
    });
    std::fprintf(stderr, "wrote %s: %lld tensors re-encoded, %s -> %s\n", opts->out.c_str(),
                 static_cast<long long>(summary.tensors_changed), format_bytes(summary.bytes_before).c_str(),
                 format_bytes(summary.bytes_after).c_str());
  });
}

}  // namespace flatline::cli
