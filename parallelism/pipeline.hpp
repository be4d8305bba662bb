// Pipeline schedules: the order in which one stage runs its forward (F), backward (B) and,
// for zero-bubble, deferred weight-gradient (W) passes over micro-batches and model chunks.
// GPipe: all forwards, then all backwards. 1F1B (PipeDream-Flush): p-s-1 warm-up forwards,
// then one forward one backward. Interleaved 1F1B (Narayanan et al. SC'21, Megatron's order):
// v chunks per stage, micro-batches through each chunk in groups of g (default p),
// (p-s-1)*2 + (v-1)*g warm-up forwards. Zero-bubble ZB-H1 (Qi et al.,
// ICLR'24): 1F1B with B split into input-gradient B and weight-gradient W, the first p-s-1
// W passes deferred into the cool-down, where they fill the wait for the next B.
#pragma once

#include <vector>

#include "parallelism/plan.hpp"

namespace wallsim::parallelism {

enum class Pass { kForward, kBackward, kWeight };

struct PipeOp {
  Pass pass;
  int micro_batch;
  int chunk;
};

/// The ops of `stage`, in the order it runs them. Interleaved: micro-batches go through each
/// chunk in groups of `group` (0: pp), the last group holding the rest (Megatron-Core's
/// schedule table); plan.cpp refuses a last group smaller than pp, as Megatron-Core does.
std::vector<PipeOp> stage_order(PipeSchedule s, int pp, int vpp, int micro_batches, int stage, int group = 0);

/// The most micro-batch chunks whose activations `stage` holds at once under the schedule.
int peak_in_flight(PipeSchedule s, int pp, int vpp, int micro_batches, int stage, int group = 0);

}  // namespace wallsim::parallelism
