// What every block sees while one chunk of token rows goes through a layer:
// the segments of the chunk (which rows belong to which conversation and at
// which positions), the states, the thread pool and the scratch buffers.
#pragma once

#include <cstdint>
#include <span>

#include "models/batch.h"
#include "models/blocks/scratch.h"
#include "models/model.h"
#include "tensor/attention.h"
#include "tensor/thread_pool.h"

namespace flatline {

// Scratch slots, one per buffer, so blocks never hand each other's buffers out.
enum ScratchSlot : size_t {
  kSlotX,          // [rows][n_embd] hidden state
  kSlotXn,         // [rows][n_embd] normed input of a block
  kSlotOut,        // [rows][n_embd] a block's output before the residual add
  kSlotQ,
  kSlotK,
  kSlotV,
  kSlotAttn,
  kSlotHeadK,      // full-mask attention: keys / values of one head, contiguous
  kSlotHeadV,
  kSlotGate,
  kSlotUp,
  kSlotRouter,
  kSlotExpertIn,
  kSlotExpertOut,
  kSlotExpertWeights,
  kSlotLatentIn,
  kSlotLatentSum,
  kSlotSsmIn,      // Mamba: the input projection
  kSlotSsmConv,    // Mamba: convolution output
  kSlotSsmDbc,     // Mamba-1: dt_low | B | C
  kSlotSsmDt,      // Mamba-1: dt per channel
  kSlotSsmY,
  kSlotFinal,      // rows whose output is wanted, normed
  kSlotLogits,
  kSlotLoopFinal,  // looped models: each row's output state
  kSlotLoopRemaining,
  kSlotLoopCdf,
  kSlotRope,       // + 2 * rope index: cos, sin (last: any number of ropes)
};

enum IntSlot : size_t {
  kIntExperts,     // [rows][n_used] selected experts
  kIntExpertRows,  // rows routed to each expert, grouped
  kIntExpertCount,
  kIntExpertFill,
  kIntLoopExit,
};

struct ChunkContext {
  const ForwardArgs& args;
  std::span<const Segment> segments;
  int64_t n_rows;
  ThreadPool& pool;
  Scratch& scratch;
  AttentionScratch& attention;

  ModelState& state(const Segment& s) const { return *args.sequences[s.seq].state; }
};

}  // namespace flatline
