// `flatline convert HF_DIR OUT.gguf [--type T]`: a Hugging Face checkpoint
// to GGUF (src/convert/). Progress goes to stderr: a bar on a terminal, a
// line per tensor otherwise. Ctrl-C stops cleanly (the temporary file is
// removed, nothing is left under OUT).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "cli/common.h"
#include "convert/convert.h"
#include "convert/type_rules.h"
#include "runtime/memory_budget.h"

namespace flatline::cli {

namespace {

std::atomic<bool> g_interrupted{false};

void on_signal(int) { g_interrupted = true; }

void show_progress(const convert::ConvertProgress& p, bool terminal) {
  const double fraction = p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
  if (!terminal) {
    if (p.tensor < p.tensors && p.starts_tensor)
      std::fprintf(stderr, "[%zu/%zu] %s\n", p.tensor + 1, p.tensors, p.name.c_str());
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] %3.0f%%  tensor %zu/%zu  %s / %s  %-40.40s", bar.c_str(), fraction * 100,
               std::min(p.tensor + 1, p.tensors), p.tensors, format_bytes(p.bytes_done).c_str(),
               format_bytes(p.bytes_total).c_str(), p.name.c_str());
  if (p.tensor >= p.tensors) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

void register_convert(CLI::App& app) {
  struct Options {
    std::string dir, out, type = "auto", name;
    bool quiet = false;
    int threads = 0;
  };
  auto opts = std::make_shared<Options>();
  auto* sub = app.add_subcommand("convert", "Convert a Hugging Face model directory (safetensors) to GGUF");
  sub->add_option("hf_dir", opts->dir, "Model directory: config.json, *.safetensors, tokenizer files")->required();
  sub->add_option("output", opts->out, "GGUF file to write")->required();
  sub->add_option("--type", opts->type,
                  std::string("Tensor type: ") + convert::output_type_names() +
                      " (auto: BF16 or F16 as the checkpoint; quantized types follow llama-quantize, K-quants as _S)")
      ->capture_default_str();
  sub->add_option("--name", opts->name, "general.name (default: the directory's name)");
  sub->add_option("-t,--threads", opts->threads, "Threads converting rows (default: physical cores)");
  sub->add_flag("-q,--quiet", opts->quiet, "No progress output");
  sub->callback([opts] {
    const bool terminal = ::isatty(STDERR_FILENO) != 0;
    convert::ConvertOptions o;
    o.type = opts->type;
    o.name = opts->name;
    o.threads = opts->threads;
    o.cancel = &g_interrupted;
    if (!opts->quiet) o.progress = [terminal](const convert::ConvertProgress& p) { show_progress(p, terminal); };
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const convert::ConvertSummary s = convert::convert_hf_model(opts->dir, opts->out, o);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (opts->quiet) return;
    for (const auto& note : s.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    std::string types;
    for (const auto& [name, count] : s.types) types += (types.empty() ? "" : ", ") + name + " x" + std::to_string(count);
    std::fprintf(stderr, "wrote %s: %s (%s), %zu tensors (%s), %s of tensor data from %s\n", opts->out.c_str(),
                 s.architecture.c_str(), s.hf_architecture.c_str(), s.tensors, types.c_str(),
                 format_bytes(s.output_bytes).c_str(), format_bytes(s.input_bytes).c_str());
  });
}

}  // namespace flatline::cli
