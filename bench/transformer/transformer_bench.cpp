// Times a transformer GGUF: prompt processing (one batch of P tokens from an
// empty context) and decoding (G single-token steps) at several context
// depths. For a depth D the KV cache first holds D tokens: by default random
// keys and values written straight into the cache (fill_state_for_benchmark,
// fast and enough to time attention over D positions), or with --prefill a
// real forward pass over D tokens.
//
//   transformer_bench MODEL.gguf [--depths 0,2048,4096] [--gen 16] [--prompt 64]
//                     [--threads N] [--kv f16|q8_0|f32] [--batch 256] [--prefill]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "models/model.h"
#include "models/transformer_base.h"
#include "tensor/isa.h"
#include "util/error.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Options {
  std::string path;
  std::vector<int64_t> depths = {0, 2048, 4096};
  int64_t gen = 16;
  int64_t prompt = 64;
  int threads = 0;
  std::string kv = "f16";
  int64_t batch = 256;
  bool prefill = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw flatline::Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--depths") {
      o.depths.clear();
      std::stringstream ss(next());
      for (std::string part; std::getline(ss, part, ',');) o.depths.push_back(std::stoll(part));
    } else if (a == "--gen") o.gen = std::stoll(next());
    else if (a == "--prompt") o.prompt = std::stoll(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--kv") o.kv = next();
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--prefill") o.prefill = true;
    else if (!a.empty() && a[0] == '-') throw flatline::Error("unknown option " + a);
    else o.path = a;
  }
  if (o.path.empty()) throw flatline::Error("usage: transformer_bench MODEL.gguf [--depths 0,2048,4096] [--gen 16] [--prompt 64] [--threads N] [--kv f16|q8_0|f32] [--batch 256] [--prefill]");
  return o;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = d(rng);
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace flatline;
  try {
    Options o = parse(argc, argv);
    auto kv_type = dtype_from_name(o.kv);
    if (!kv_type) throw Error("unknown KV type " + o.kv);
    LoadOptions lo;
    lo.pool = std::make_shared<ThreadPool>(o.threads);
    lo.max_batch = o.batch;
    lo.kv_type = *kv_type;
    auto t_load = Clock::now();
    auto file = std::make_shared<const gguf::File>(gguf::File::open(o.path));
    auto model = load_model(file, lo);
    const ModelInfo& info = model->info();
    const int64_t V = info.n_vocab;
    std::printf("model %s (%s), %.2f GB weights (%s), %.2f GB read per token, isa %s, %d threads, KV %s, load %.2f s\n",
                info.name.c_str(), info.architecture.c_str(), info.weight_bytes / 1e9, info.file_type.c_str(),
                info.bytes_per_token / 1e9, std::string(isa_name(active_isa())).c_str(), lo.pool->size(),
                o.kv.c_str(), seconds_since(t_load));
    std::vector<float> logits(static_cast<size_t>(V));

    // Warm-up: one decode step pages the weights in.
    {
      auto s = model->new_state(8);
      auto ids = random_tokens(1, V, 7);
      auto t0 = Clock::now();
      model->forward(*s, ids, LogitsMode::Last, logits.data());
      std::printf("warm-up step (pages weights in): %.2f s\n", seconds_since(t0));
    }

    if (o.prompt > 0) {
      auto s = model->new_state(o.prompt);
      auto ids = random_tokens(o.prompt, V, 11);
      auto t0 = Clock::now();
      forward_times(*model, true);
      model->forward(*s, ids, LogitsMode::Last, logits.data());
      const double dt = seconds_since(t0);
      const ForwardTimes ft = forward_times(*model, true);
      std::printf("prompt processing: %lld tokens in %.2f s = %.2f tokens/s (matmul %.2f s, attention %.3f s)\n",
                  static_cast<long long>(o.prompt), dt, o.prompt / dt, ft.matmul, ft.attention);
    }

    for (int64_t depth : o.depths) {
      auto s = model->new_state(depth + o.gen + 1);
      std::printf("depth %5lld: state %.1f MB; ", static_cast<long long>(depth), s->memory_bytes() / 1e6);
      if (o.prefill && depth > 0) {
        auto ids = random_tokens(depth, V, 13);
        auto t0 = Clock::now();
        model->forward(*s, ids, LogitsMode::None, nullptr);
        const double dt = seconds_since(t0);
        std::printf("prefill %.1f s (%.2f tokens/s); ", dt, depth / dt);
      } else {
        fill_state_for_benchmark(*s, depth, 17);
      }
      std::fflush(stdout);
      auto ids = random_tokens(o.gen, V, 19);
      forward_times(*model, true);
      std::vector<double> steps;
      for (int64_t i = 0; i < o.gen; ++i) {
        auto t0 = Clock::now();
        model->forward(*s, std::span<const int32_t>(&ids[i], 1), LogitsMode::Last, logits.data());
        steps.push_back(seconds_since(t0));
      }
      std::sort(steps.begin(), steps.end());
      double total = 0;
      for (double t : steps) total += t;
      const ForwardTimes ft = forward_times(*model, true);
      std::printf("decode %lld tokens: %.3f tokens/s (mean %.1f ms, median %.1f ms, min %.1f ms; per token: "
                  "matmul %.1f ms, attention %.2f ms, other %.2f ms)\n",
                  static_cast<long long>(o.gen), o.gen / total, 1e3 * total / o.gen, 1e3 * steps[steps.size() / 2],
                  1e3 * steps.front(), 1e3 * ft.matmul / o.gen, 1e3 * ft.attention / o.gen,
                  1e3 * (ft.total - ft.matmul - ft.attention) / o.gen);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
