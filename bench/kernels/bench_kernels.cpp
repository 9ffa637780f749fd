// Timing of the weight kernels at the shapes of RWKV-7 "World" 2.9B
// (n_embd 2560, ffn 10240, 32 layers, vocab 65536), per weight type:
//  - generation: one matvec per weight matrix of a layer (r, k, v, o: 2560 x
//    2560; ffn key 10240 x 2560, ffn value 2560 x 10240) and the head, with
//    weights far larger than the L3 so they stream from memory. Reported as
//    GB/s of weights read and as a fraction of the measured read bandwidth.
//  - prompt: the same matrices through matmul with n tokens at once.
// Tokens/s are for the whole 32-layer model: 32 * time(layer) + time(head),
// with time(layer) averaged over the layers actually allocated (--layers).
//
//   flatline_bench_kernels [--types q8_0,q4_0,...] [--threads 2] [--layers 4]
//                          [--reps 3] [--tokens 128,512] [--no-prompt]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/bandwidth.h"
#include "tensor/dtype.h"
#include "tensor/isa.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"
#include "util/error.h"

namespace {

using namespace flatline;
using Clock = std::chrono::steady_clock;

constexpr int64_t kEmbd = 2560, kFfn = 10240, kVocab = 65536, kModelLayers = 32;

struct Weight {
  Matrix m;
  std::vector<uint8_t> bytes;
};

// A matrix of `type` whose rows repeat a few genuinely quantized random rows
// (realistic scales, no NaN/denormal surprises) without quantizing gigabytes.
Weight make_weight(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  constexpr int kDistinct = 16;
  const size_t rb = row_bytes(type, cols);
  std::normal_distribution<float> dist(0.f, 0.02f);
  std::vector<float> src(static_cast<size_t>(cols));
  std::vector<uint8_t> distinct(rb * kDistinct);
  for (int i = 0; i < kDistinct; ++i) {
    for (float& v : src) v = dist(rng);
    quantize_row(type, src.data(), distinct.data() + i * rb, cols);
  }
  Weight w;
  w.bytes.resize(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) std::memcpy(w.bytes.data() + r * rb, distinct.data() + (r % kDistinct) * rb, rb);
  w.m = Matrix{type, rows, cols, w.bytes.data(), rb};
  return w;
}

struct Model {
  std::vector<std::vector<Weight>> layers;
  Weight head;
  size_t layer_bytes = 0;
};

Model make_model(DType type, int n_layers) {
  std::mt19937 rng(1234);
  Model model;
  for (int l = 0; l < n_layers; ++l) {
    std::vector<Weight> layer;
    for (int i = 0; i < 4; ++i) layer.push_back(make_weight(type, kEmbd, kEmbd, rng));
    layer.push_back(make_weight(type, kFfn, kEmbd, rng));
    layer.push_back(make_weight(type, kEmbd, kFfn, rng));
    model.layers.push_back(std::move(layer));
  }
  for (const Weight& w : model.layers[0]) model.layer_bytes += w.m.bytes();
  model.head = make_weight(type, kVocab, kEmbd, rng);
  return model;
}

struct Timing {
  double layer_seconds = 0;  // average over layers
  double head_seconds = 0;
  double cpu_seconds = 0;    // process CPU time of the best repetition (all threads)
  double wall_seconds = 0;   // its wall time
};

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Best over reps of running every matrix with n tokens (n == 1: matvec).
Timing run_model(const Model& model, int64_t n, int reps, ThreadPool& pool, std::vector<float>& x,
                 std::vector<float>& y) {
  Timing best{1e30, 1e30, 0, 1e30};
  for (int rep = 0; rep < reps; ++rep) {
    const double c0 = process_cpu_seconds();
    auto t0 = Clock::now();
    for (const auto& layer : model.layers)
      for (const Weight& w : layer) {
        if (n == 1) matvec(w.m, x.data(), y.data(), pool);
        else matmul(w.m, x.data(), n, y.data(), pool);
      }
    auto t1 = Clock::now();
    if (n == 1) matvec(model.head.m, x.data(), y.data(), pool);
    else matmul(model.head.m, x.data(), n, y.data(), pool);
    auto t2 = Clock::now();
    const double wall = std::chrono::duration<double>(t2 - t0).count();
    if (wall < best.wall_seconds) {
      best.wall_seconds = wall;
      best.cpu_seconds = process_cpu_seconds() - c0;
    }
    best.layer_seconds = std::min(best.layer_seconds,
                                  std::chrono::duration<double>(t1 - t0).count() / model.layers.size());
    best.head_seconds = std::min(best.head_seconds, std::chrono::duration<double>(t2 - t1).count());
  }
  return best;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> types = {"q8_0", "q4_0", "q4_k", "q6_k", "f16"};
    std::vector<int64_t> tokens = {128, 512};
    int threads = 2, n_layers = 4, reps = 3;
    bool prompt = true;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw Error("option " + a + " needs a value");
        return argv[++i];
      };
      if (a == "--types") types = split(next());
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--layers") n_layers = std::stoi(next());
      else if (a == "--reps") reps = std::stoi(next());
      else if (a == "--tokens") {
        tokens.clear();
        for (auto& t : split(next())) tokens.push_back(std::stoll(t));
      } else if (a == "--no-prompt") prompt = false;
      else throw Error("unknown option " + a);
    }
    ThreadPool pool(threads);
    const double bw = measure_read_bandwidth_gbs(pool);
    std::printf("isa %s, %d threads, measured read bandwidth %.1f GB/s, load average %s\n",
                std::string(isa_name(active_isa())).c_str(), pool.size(), bw, load_average().c_str());
    const int64_t max_tokens = tokens.empty() ? 1 : *std::max_element(tokens.begin(), tokens.end());
    std::vector<float> x(static_cast<size_t>(max_tokens * kFfn)), y(static_cast<size_t>(max_tokens * kVocab));
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.f, 1.f);
    for (float& v : x) v = dist(rng);

    for (const std::string& name : types) {
      auto type = dtype_from_name(name);
      if (!type) throw Error("unknown type " + name);
      Model model = make_model(*type, n_layers);
      const double model_bytes = kModelLayers * model.layer_bytes + model.head.m.bytes();
      Timing gen = run_model(model, 1, reps, pool, x, y);
      const double gen_seconds = kModelLayers * gen.layer_seconds + gen.head_seconds;
      const double layer_gbs = model.layer_bytes / gen.layer_seconds / 1e9;
      const double gen_gbs = model_bytes / gen_seconds / 1e9;
      std::printf("%-5s model %.2f GB | gen %.2f tok/s, %.1f GB/s (%.0f%% of bw; layers %.1f GB/s, head %.1f GB/s)\n",
                  name.c_str(), model_bytes / 1e9, 1 / gen_seconds, gen_gbs, 100 * gen_gbs / bw, layer_gbs,
                  model.head.m.bytes() / gen.head_seconds / 1e9);
      if (!prompt) continue;
      for (int64_t n : tokens) {
        Timing pp = run_model(model, n, std::max(1, reps - 1), pool, x, y);
        const double pp_seconds = kModelLayers * pp.layer_seconds + pp.head_seconds;
        const double macs = (model_bytes / traits(*type).block_bytes * traits(*type).block_size) * n;
        // Compute efficiency independent of other processes: multiply-adds per
        // CPU second of this process (includes the pool's brief spinning).
        double run_macs = static_cast<double>(model.head.m.rows * model.head.m.cols);
        for (const auto& layer : model.layers)
          for (const Weight& w : layer) run_macs += static_cast<double>(w.m.rows * w.m.cols);
        run_macs *= static_cast<double>(n);
        std::printf("      prompt n=%-4lld %.1f tok/s (%.1fx gen, %.1f GMAC/s; %.1f GMAC per CPU-second)\n",
                    static_cast<long long>(n), n / pp_seconds, (n / pp_seconds) * gen_seconds, macs / pp_seconds / 1e9,
                    run_macs / pp.cpu_seconds / 1e9);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
