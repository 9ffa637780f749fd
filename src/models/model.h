// The one interface every architecture implements:
//   state in, tokens in -> logits out, state out.
// A Model is immutable after load: weights (views into the mapped GGUF), its
// traits and its layer plan. Everything about one conversation lives in a
// ModelState (models/state/model_state.h), and the buffers one forward pass
// needs live in a Workspace the caller owns, so forward() is const and two
// threads may run two conversations on one loaded model, each with its own
// workspace.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "models/state/model_state.h"
#include "tensor/dtype.h"
#include "tensor/thread_pool.h"

namespace flatline {

enum class GenerationKind {
  Autoregressive,   // one token after the other (every causal model)
  MaskedDiffusion,  // a canvas of mask tokens refined over steps (LLaDA, Dream)
};

// What the runtime may assume about a model. Filled by each factory; every
// runtime decision asks the property it means.
struct ModelTraits {
  GenerationKind generation = GenerationKind::Autoregressive;
  bool causal = true;           // attention sees only earlier positions
  bool prefix_reusable = true;  // a state after a prefix can be continued (false for diffusion)
  bool can_truncate = false;    // the newest tokens of a state can be dropped (no recurrent part)
  // A state's size: a fixed part plus, for models with attention layers, a
  // part per token of context (the KV of the layers without a sliding window).
  uint64_t state_fixed_bytes = 0;
  uint64_t state_bytes_per_token = 0;
  // True when a state holds positions and so needs a context size (any model
  // with attention layers). Models without one accept any number of tokens.
  bool has_context_limit = false;
  int64_t trained_context = 0;  // <arch>.context_length (0 = none given)
};

// How a looped model picks the loop whose state gives a token's output.
// With the gate's lambda_t, p_t = lambda_t * prod_{s<t}(1 - lambda_s) (the
// last loop takes the rest); a token exits at the first loop whose cumulative
// p reaches `threshold`. Select computes every loop for every token and only
// chooses (what the authors' code does); Skip stops computing a token after
// its exit loop and fills its KV slots of the later loops with the last
// computed loop's K/V, so later tokens still find them. fixed_loops > 0 runs
// exactly that many loops for every token (the gate is not consulted).
struct LoopExit {
  enum class Mode { Select, Skip };
  Mode mode = Mode::Select;
  float threshold = 1.0f;
  int64_t fixed_loops = 0;
  bool operator==(const LoopExit&) const = default;
};

// A looped model's policy `base` with a request's or a command line's
// overrides: `loops` (a whole number from 1 to n_loops) fixes the loop count;
// `threshold` (0..1) sets the exit threshold and clears a fixed count;
// `mode` is "select" or "skip" (unset: Skip when the threshold given is
// below 1, Select when it is 1). Throws Error naming the bad value.
LoopExit override_loop_exit(LoopExit base, int64_t n_loops, std::optional<double> loops,
                            std::optional<double> threshold, const std::optional<std::string>& mode);
// The policy in words, e.g. "exit at q=0.5, skip" or "2 loops", for logs and
// the state cache's keys.
std::string describe_loop_exit(const LoopExit& exit);

struct ModelInfo {
  std::string architecture;   // general.architecture
  std::string name;           // general.name, else the file stem
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ctx_train = 0;    // <arch>.context_length (0 = unbounded, e.g. RWKV)
  uint64_t n_params = 0;      // elements of all weight tensors
  uint64_t weight_bytes = 0;  // bytes of all weight tensors
  uint64_t bytes_per_token = 0;  // weight bytes one decode step reads (unused embedding rows and experts excluded)
  std::string file_type;      // most common weight type by bytes, e.g. "Q8_0"
  // Looped models (Ouro): loops in the checkpoint, whether it has an exit
  // gate, and the policy it was loaded with (1, false, default elsewhere).
  int64_t n_loops = 1;
  bool has_exit_gate = false;
  LoopExit loop_exit;
};

enum class LogitsMode { None, Last, All };
// Causal: each row sees the state's earlier positions and the rows before it,
//   and its K/V are appended to the state (the normal, autoregressive case).
// Full: each row sees all rows of its sequence in this call (bidirectional)
//   and the state is left as it was, unless ForwardArgs::store_kv, which
//   makes the state hold exactly this call's K/V (a diffusion step whose
//   keys later steps may reuse).
// Cached: the rows sit at SequenceInput::position.. inside what the state
//   holds; their K/V replace the state's there, and each row sees every
//   position the state holds (approximate diffusion steps over a cached canvas).
// Models that are not causal never use Causal.
enum class AttentionMask { Causal, Full, Cached };

// Per-token facts a forward pass can report (for --verbose, run --stats,
// logits --loops-out and the server's final response).
struct ForwardStats {
  std::vector<int32_t> loops_used;  // looped models: loops computed per token, appended in order
};

// One conversation's part of a forward pass.
struct SequenceInput {
  ModelState* state = nullptr;
  std::span<const int32_t> tokens;
  LogitsMode logits = LogitsMode::Last;
  // n_vocab floats for Last, tokens x n_vocab (row-major) for All; n_embd
  // floats per row instead when ForwardArgs::hidden is set.
  float* out = nullptr;
  ForwardStats* stats = nullptr;  // optional
  int64_t position = -1;          // Cached mask: position of the first token (inside the state)
  // All: only the rows of tokens [logits_first, logits_end) are computed
  // (logits_end -1: to the last), written from `out` on. A diffusion step
  // needs the logits of one block, not of the whole canvas (a vocabulary of
  // 126k makes the rest the largest buffer of the pass).
  int64_t logits_first = 0;
  int64_t logits_end = -1;
};

struct ForwardArgs {
  std::span<const SequenceInput> sequences;
  AttentionMask mask = AttentionMask::Causal;
  bool store_kv = false;  // Full mask: keep this call's K/V in the states (see AttentionMask)
  // Write the final normed hidden states (n_embd per row) instead of logits
  // (embeddings).
  bool hidden = false;
  // Looped models: this call's exit policy (nullptr: the one the model was
  // loaded with). Other models ignore it.
  const LoopExit* loop_exit = nullptr;
};

// Buffers of one forward pass, grown to the largest batch seen. Made by the
// model (new_workspace) and owned by the caller; one per thread that runs
// forward passes.
class Workspace {
 public:
  virtual ~Workspace() = default;
  virtual uint64_t bytes() const = 0;
};

// Options for loading. `family` holds the options only some architectures
// understand (e.g. "loops", "exit_threshold"); a factory rejects any key it
// does not know, naming it.
struct LoadOptions {
  std::shared_ptr<ThreadPool> pool;  // required
  int64_t max_batch = 256;           // tokens per chunk in prompt processing
  // Models with attention: element type of the KV cache (F16, Q8_0 or F32;
  // Q8_0 needs head dims that are multiples of 32).
  DType kv_type = DType::F16;
  // Sliding-window layers (Gemma 3): keep the whole context there too, so a
  // state can truncate() far back. Costs memory.
  bool kv_swa_full = false;
  std::map<std::string, std::string> family;
};

class Model {
 public:
  virtual ~Model() = default;
  const ModelInfo& info() const { return info_; }
  const ModelTraits& traits() const { return traits_; }
  const gguf::File& file() const { return *file_; }
  std::shared_ptr<const gguf::File> file_ptr() const { return file_; }

  // A fresh state able to hold n_ctx tokens (ignored without a context limit).
  std::unique_ptr<ModelState> new_state(int64_t n_ctx) const;
  // Bytes a state for n_ctx tokens takes at most, for the memory budget.
  uint64_t state_bytes(int64_t n_ctx) const;
  const StateLayout& state_layout() const { return layout_; }

  virtual std::unique_ptr<Workspace> new_workspace() const = 0;
  // Bytes a workspace takes for a batch of max_batch tokens.
  virtual uint64_t workspace_bytes() const = 0;
  // What a bidirectional pass over a canvas of `rows` positions needs on
  // top of workspace_bytes() (its rows share one chunk, and a diffusion
  // step keeps their logits): 0 for causal models.
  virtual uint64_t canvas_bytes(int64_t rows) const { return 0; }
  // Weights (mapped file) + workspace + one state of n_ctx tokens + the
  // largest canvas that context allows: the memory budget's figure.
  uint64_t resident_bytes(int64_t n_ctx) const;

  // Feeds each sequence's tokens after what its state already holds and
  // writes the requested logits. Throws Error for token ids out of range or
  // a state of another shape, ContextOverflowError when a state cannot hold
  // its tokens; no state changes when it throws.
  virtual void forward(const ForwardArgs& args, Workspace& ws) const = 0;

  // One sequence.
  void forward(ModelState& state, std::span<const int32_t> tokens, LogitsMode mode, float* out, Workspace& ws) const;

 protected:
  // For factories: checks every sequence before anything is mutated.
  void validate(const ForwardArgs& args) const;
  void set_layout(StateLayout layout);

  ModelInfo info_;
  ModelTraits traits_;
  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<ThreadPool> pool_;
  StateLayout layout_;
};

// Creates the model for file->architecture(); throws Error naming the
// architecture when flatline has no implementation for it.
std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& options);
std::vector<std::string> supported_architectures();

}  // namespace flatline
