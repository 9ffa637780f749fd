// The one interface every architecture implements:
//   state in, tokens in -> logits out, state out.
// A Model is immutable weights (views into the mapped GGUF) plus per-model
// scratch buffers; all per-conversation data lives in a ModelState, which is
// a value: it can be cloned, saved, loaded and measured.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/dtype.h"
#include "tensor/thread_pool.h"

namespace flatline {

struct ModelInfo {
  std::string architecture;   // general.architecture
  std::string name;           // general.name, else the file stem
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ctx_train = 0;    // <arch>.context_length (0 = unbounded, e.g. RWKV)
  uint64_t n_params = 0;      // elements of all weight tensors
  uint64_t weight_bytes = 0;  // bytes of all weight tensors
  uint64_t bytes_per_token = 0;  // weight bytes one decode step reads (excludes unused embedding rows)
  bool recurrent = false;     // state size does not grow with context
  std::string file_type;      // most common weight type by bytes, e.g. "Q8_0"
};

class ModelState {
 public:
  virtual ~ModelState() = default;
  virtual std::unique_ptr<ModelState> clone() const = 0;
  virtual void reset() = 0;                 // back to the empty context
  virtual size_t memory_bytes() const = 0;  // bytes this state holds now
  // Raw payload for persistence (no header: the runtime adds the model
  // fingerprint and checks it). load() throws Error on any size mismatch.
  virtual void save(std::vector<uint8_t>& out) const = 0;
  virtual void load(std::span<const uint8_t> in) = 0;
  // Transformers can drop the newest tokens (their KV); recurrent states
  // cannot and return false.
  virtual bool truncate(int64_t n_tokens) { return n_tokens == n_past_; }

  int64_t n_past() const { return n_past_; }  // tokens consumed since reset
  int64_t n_ctx() const { return n_ctx_; }    // capacity (0 = unbounded)

 protected:
  int64_t n_past_ = 0;
  int64_t n_ctx_ = 0;
};

enum class LogitsMode { None, Last, All };

struct LoadOptions {
  std::shared_ptr<ThreadPool> pool;  // required
  int64_t max_batch = 256;           // tokens per matmul chunk in prompt processing
  // Transformers: element type of the KV cache (F16, Q8_0 or F32; Q8_0
  // needs head dims that are multiples of 32).
  DType kv_type = DType::F16;
  // Transformers with sliding-window layers (Gemma 3): keep the whole
  // context in those layers too instead of a ring of window + max_batch
  // tokens. Costs memory; needed only to truncate() far back.
  bool kv_swa_full = false;
};

class Model {
 public:
  virtual ~Model() = default;
  const ModelInfo& info() const { return info_; }
  const gguf::File& file() const { return *file_; }
  std::shared_ptr<const gguf::File> file_ptr() const { return file_; }

  // A fresh state able to hold n_ctx tokens (ignored by recurrent models).
  virtual std::unique_ptr<ModelState> new_state(int64_t n_ctx) const = 0;
  // Bytes a state for n_ctx tokens will take, for the memory budget.
  virtual uint64_t state_bytes(int64_t n_ctx) const = 0;
  // Bytes of scratch buffers (activations) this model allocates.
  virtual uint64_t scratch_bytes() const = 0;
  // Bytes one more token of context adds to a state once the context is
  // long (transformers: the KV of the layers without a sliding window; 0 for
  // recurrent models). state_bytes() is the exact figure for a given n_ctx.
  virtual uint64_t kv_bytes_per_token() const { return 0; }

  // Feeds `tokens` after what `state` already holds. Writes n_vocab logits
  // for the last token (Last) or for every token (All, row-major) to
  // `logits`, which must be large enough. Throws Error for token ids out of
  // range or a context overflow; the state is unchanged when it throws.
  // Not reentrant: one forward at a time per Model.
  virtual void forward(ModelState& state, std::span<const int32_t> tokens, LogitsMode mode, float* logits) = 0;

 protected:
  ModelInfo info_;
  std::shared_ptr<const gguf::File> file_;
};

// Creates the model for file->architecture(); throws Error naming the
// architecture when flatline has no implementation for it.
std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& options);
std::vector<std::string> supported_architectures();

}  // namespace flatline
