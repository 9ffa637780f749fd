#include "models/model.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "util/error.h"

namespace flatline {

LoopExit override_loop_exit(LoopExit base, int64_t n_loops, std::optional<double> loops,
                            std::optional<double> threshold, const std::optional<std::string>& mode) {
  if (loops) {
    if (!(*loops >= 1 && *loops <= static_cast<double>(n_loops)) || *loops != std::floor(*loops)) {
      std::ostringstream found;
      found << *loops;
      throw Error("loops must be a whole number from 1 to " + std::to_string(n_loops) +
                  " (the checkpoint's ouro.num_loops), found " + found.str());
    }
    base.fixed_loops = static_cast<int64_t>(*loops);
  }
  if (threshold) {
    if (!(*threshold >= 0 && *threshold <= 1)) {
      std::ostringstream found;
      found << *threshold;
      throw Error("exit_threshold must be between 0 and 1, found " + found.str());
    }
    base.threshold = static_cast<float>(*threshold);
    if (!loops) base.fixed_loops = 0;
    if (!mode) base.mode = base.threshold < 1.0f ? LoopExit::Mode::Skip : LoopExit::Mode::Select;
  }
  if (mode) {
    if (*mode != "select" && *mode != "skip")
      throw Error("exit_mode must be select or skip, found '" + *mode + "'");
    base.mode = *mode == "skip" ? LoopExit::Mode::Skip : LoopExit::Mode::Select;
  }
  return base;
}

std::string describe_loop_exit(const LoopExit& exit) {
  std::ostringstream out;
  if (exit.fixed_loops > 0)
    out << exit.fixed_loops << " loops";
  else
    out << "exit at q=" << exit.threshold << ", " << (exit.mode == LoopExit::Mode::Skip ? "skip" : "select");
  return out.str();
}

std::unique_ptr<ModelState> Model::new_state(int64_t n_ctx) const {
  if (!layout_.has_kv()) return std::make_unique<ModelState>(layout_, 0);
  if (n_ctx < 1) throw Error("n_ctx must be at least 1 for a model with attention layers, found " + std::to_string(n_ctx));
  return std::make_unique<ModelState>(layout_, n_ctx);
}

uint64_t Model::state_bytes(int64_t n_ctx) const {
  const int64_t positions = layout_.has_kv() ? std::max<int64_t>(1, n_ctx) : 0;
  return sizeof(ModelState) + layout_.recurrent_bytes() + KvPart::bytes_for(layout_.kv_type, layout_.kv_layers, positions);
}

uint64_t Model::resident_bytes(int64_t n_ctx) const {
  return file_->file_size() + workspace_bytes() + state_bytes(n_ctx) + canvas_bytes(n_ctx);
}

void Model::set_layout(StateLayout layout) {
  layout_ = std::move(layout);
  traits_.has_context_limit = layout_.has_kv();
  traits_.can_truncate = !layout_.has_recurrent();
  traits_.state_fixed_bytes = sizeof(ModelState) + layout_.recurrent_bytes();
  traits_.state_bytes_per_token = 0;
  for (const auto& s : layout_.kv_layers)
    if (s.window == 0 || s.keep_all)
      traits_.state_bytes_per_token +=
          static_cast<uint64_t>(s.n_head_kv) * (row_bytes(layout_.kv_type, s.head_dim_k) + row_bytes(layout_.kv_type, s.head_dim_v));
  // Window layers cost a bounded amount whatever the context: count it as fixed.
  for (size_t l = 0; l < layout_.kv_layers.size(); ++l) {
    const auto& s = layout_.kv_layers[l];
    if (s.window > 0 && !s.keep_all) traits_.state_fixed_bytes += KvPart::bytes_for(layout_.kv_type, {s}, s.window + KvPart::kPageRows);
  }
}

void Model::validate(const ForwardArgs& args) const {
  for (size_t s = 0; s < args.sequences.size(); ++s) {
    const SequenceInput& in = args.sequences[s];
    if (!in.state) throw Error("forward: sequence " + std::to_string(s) + " has no state");
    if (!(in.state->layout() == layout_))
      throw Error(info_.architecture + ": the state was made by a model of another shape or KV type");
    for (size_t j = 0; j < s; ++j)
      if (args.sequences[j].state == in.state) throw Error("forward: one state appears twice in a batch");
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    for (int64_t i = 0; i < n; ++i)
      if (in.tokens[i] < 0 || in.tokens[i] >= info_.n_vocab)
        throw Error("token id " + std::to_string(in.tokens[i]) + " at index " + std::to_string(i) +
                    " is out of range (vocabulary size " + std::to_string(info_.n_vocab) + ")");
    const ModelState& st = *in.state;
    if (args.mask == AttentionMask::Cached) {
      if (in.position < 0 || in.position > st.n_past() - n)
        throw Error("forward: cached rows at position " + std::to_string(in.position) + " (" + std::to_string(n) +
                    " of them) must lie inside the " + std::to_string(st.n_past()) + " positions the state holds");
      continue;
    }
    if (args.mask == AttentionMask::Full && args.store_kv && st.n_ctx() > 0 && n > st.n_ctx())
      throw ContextOverflowError("context overflow: a canvas of " + std::to_string(n) + " tokens does not fit n_ctx " +
                                 std::to_string(st.n_ctx()));
    if (args.mask != AttentionMask::Full && st.n_ctx() > 0 && n > st.n_ctx() - st.n_past())
      throw ContextOverflowError("context overflow: " + std::to_string(n) + " new tokens do not fit after the " +
                                 std::to_string(st.n_past()) + " already in the context (n_ctx " +
                                 std::to_string(st.n_ctx()) + "); at most " +
                                 std::to_string(st.n_ctx() - st.n_past()) + " more tokens fit");
    if (in.logits != LogitsMode::None && n > 0 && !in.out)
      throw Error("forward: logits requested but no output buffer given");
  }
}

void Model::forward(ModelState& state, std::span<const int32_t> tokens, LogitsMode mode, float* out,
                    Workspace& ws) const {
  SequenceInput in;
  in.state = &state;
  in.tokens = tokens;
  in.logits = mode;
  in.out = out;
  ForwardArgs args;
  args.sequences = std::span<const SequenceInput>(&in, 1);
  forward(args, ws);
}

}  // namespace flatline
