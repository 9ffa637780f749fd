// How a forward pass over several conversations is cut into chunks: each
// chunk holds at most max_rows token rows, made of segments (consecutive
// tokens of one sequence). Projections run over all rows of a chunk at
// once; whatever mixes tokens over time (attention, convolution, scans,
// token shift) runs per segment against that segment's state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "models/model.h"

namespace flatline {

struct Segment {
  int64_t seq = 0;     // index into ForwardArgs::sequences
  int64_t row0 = 0;    // first row of the segment in the chunk
  int64_t n = 0;       // rows
  int64_t token0 = 0;  // index of the first row's token in the sequence's tokens
  int64_t pos0 = 0;    // position of the first row (the state's n_past when the chunk runs)
  bool ends_sequence = false;  // the sequence's last token is in this segment
};

// The rows of a chunk whose output (logits or hidden state) is wanted, in
// row order: (row, destination) pairs.
struct OutputRow {
  int64_t row;
  float* out;
};

// Calls fn(segments, n_rows) for each chunk, in order. The caller's fn must
// advance each segment's state by its rows before returning (the next chunk
// of a sequence starts at its new n_past). `segments` is reused storage.
template <typename Fn>
void for_each_chunk(const ForwardArgs& args, int64_t max_rows, std::vector<Segment>& segments, Fn&& fn) {
  const int64_t n_seq = static_cast<int64_t>(args.sequences.size());
  int64_t seq = 0, token = 0;
  while (seq < n_seq) {
    segments.clear();
    int64_t rows = 0;
    while (seq < n_seq && rows < max_rows) {
      const SequenceInput& in = args.sequences[seq];
      const int64_t left = static_cast<int64_t>(in.tokens.size()) - token;
      if (left <= 0) {
        ++seq, token = 0;
        continue;
      }
      const int64_t take = std::min(left, max_rows - rows);
      Segment s;
      s.seq = seq;
      s.row0 = rows;
      s.n = take;
      s.token0 = token;
      s.pos0 = in.position >= 0 ? in.position + token : in.state->n_past();
      s.ends_sequence = take == left;
      segments.push_back(s);
      rows += take;
      token += take;
      if (s.ends_sequence) ++seq, token = 0;
    }
    if (rows > 0) fn(std::span<const Segment>(segments), rows);
  }
}

// The rows of a chunk whose output is wanted, with where each goes (row
// size `width`: n_vocab for logits, n_embd for hidden states).
inline void output_rows(const ForwardArgs& args, std::span<const Segment> segments, int64_t width,
                        std::vector<OutputRow>& rows) {
  rows.clear();
  for (const Segment& s : segments) {
    const SequenceInput& in = args.sequences[s.seq];
    if (in.logits == LogitsMode::All)
      for (int64_t i = 0; i < s.n; ++i) rows.push_back({s.row0 + i, in.out + (s.token0 + i) * width});
    else if (in.logits == LogitsMode::Last && s.ends_sequence)
      rows.push_back({s.row0 + s.n - 1, in.out});
  }
}

}  // namespace flatline
