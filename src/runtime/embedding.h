// Sentence embeddings from a model's hidden states: the output-normed hidden
// state of the model's last layer (what the output projection reads), pooled
// over a text's tokens and L2-normalised, as Ollama returns them.
//
// Pooling comes from the GGUF key <arch>.pooling_type, numbered as llama.cpp
// numbers it (0 none, 1 mean, 2 cls, 3 last, 4 rank). A file without the key
// is a generative model: causal models pool the last token (the only one
// that has seen the whole text), bidirectional ones (masked diffusion) the
// mean over one non-causal pass. "none" (one vector per token) and "rank"
// (a reranker head) are not sentence embeddings and are refused.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace flatline {

enum class Pooling { Mean = 1, Cls = 2, Last = 3 };

// "mean", "cls", "last".
const char* pooling_name(Pooling pooling);

// The pooling `model` declares, or its default (see above). Throws Error
// naming the key for none / rank / an unknown value.
Pooling pooling_of(const Model& model);

// True when the file declares <arch>.pooling_type (an embedding model, in
// Ollama's capabilities).
bool declares_pooling(const gguf::File& file);

// The pooled hidden state of `ids` fed into a fresh state (n_embd floats,
// not normalised). Feeds causal models in pieces of at most `piece` tokens
// so the per-token buffer stays small; a bidirectional model takes all ids
// in one pass. Throws Error for no ids, ContextOverflowError when they do
// not fit n_ctx.
std::vector<float> pooled_hidden_state(Engine& engine, std::span<const int32_t> ids, Pooling pooling, int64_t n_ctx,
                                       int64_t piece = 256);

// v / max(|v|, 1e-12) (Ollama's normalize). Throws Error if v holds NaN or Inf.
void l2_normalise(std::vector<float>& v);

// Keeps the first `dimensions` entries and normalises again (Ollama's
// `dimensions`, the Matryoshka convention). Throws Error unless
// 1 <= dimensions <= v.size().
void truncate_dimensions(std::vector<float>& v, int64_t dimensions);

}  // namespace flatline
