// Pipeline schedules: the order in which one stage runs its forward (F), backward (B) and,
// for zero-bubble, deferred weight-gradient (W) passes over micro-batches and model chunks.
// GPipe: all forwards, then all backwards. 1F1B (PipeDream-Flush): p-s-1 warm-up forwards,
// then one forward one backward. Interleaved 1F1B (Narayanan et al. SC'21, Megatron's order):
// v chunks per stage, micro-batches through each chunk in groups of g (default p),
// (p-s-1)*2 + (v-1)*g warm-up forwards. Zero-bubble ZB-H1 (Qi et al.,
// ICLR'24): 1F1B with B split into input-gradient B and weight-gradient W, the first p-s-1
// W passes deferred into the cool-down, where they fill the wait for the next B. DualPipe
// (DeepSeek-V3, deepseek-ai/DualPipe): two pipelines in opposite directions over the same
// ranks, each rank holding stage s of one and stage pp-1-s of the other (its two chunks, or
// "phases"), half the micro-batches each way; DualPipe.step's eight steps, with some
// backwards split into input and weight gradients (W deferred, zero-bubble style) and the
// rest whole (a B followed at once by its W here). Its overlapped forward-backward pairs and
// deferred sends are marked on the ops. ZB-V (Qi et al. sec. 6; PyTorch's
// ScheduleZBVZeroBubble): two chunks a rank in a V, rank s holding virtual stages s and
// 2·pp-1-s (so the first rank holds both the embedding and the head), backwards split into B
// and W as zero-bubble's.
#pragma once

#include <vector>

#include "parallelism/plan.hpp"

namespace wallsim::parallelism {

enum class Pass { kForward, kBackward, kWeight };

struct PipeOp {
  Pass pass;
  int micro_batch;  ///< DualPipe: 0 .. m/2-1 enter at the first rank, the rest at the last
  int chunk;        ///< the stage's chunk (DualPipe: its phase)
  /// DualPipe: a forward overlapped with the backward after it (_forward_backward_chunk): it
  /// starts once both have their inputs, and both outputs leave when both are done.
  bool with_next = false;
  /// DualPipe: its output leaves after the next op is done (the sends DualPipe.step defers).
  bool send_later = false;
};

/// Where a chunk of a pipeline rank sits on the data's path. Virtual stages number the path's
/// places (interleaved: chunk·pp + stage; DualPipe: direction·pp + model stage; ZB-V: stage,
/// then 2·pp-1-stage); the plan's
/// layers of that place are Plan::layers_of(layer_chunk, layer_stage).
struct PipePlace {
  int virtual_stage = 0;
  int layer_chunk = 0, layer_stage = 0;
  bool first = true, last = true;  ///< holds the embedding's input / the head's output
};
class PipeMap {
 public:
  PipeMap(PipeSchedule s, int pp, int vpp);
  [[nodiscard]] PipePlace at(int chunk, int stage) const;
  /// The pipeline rank of virtual stage `vs`, and the virtual stages one step along the path.
  [[nodiscard]] int stage_of(int vs) const;
  [[nodiscard]] int prev(int vs) const { return vs - 1; }
  [[nodiscard]] int next(int vs) const { return vs + 1; }
  /// Virtual stages in all (tags number them) and chunks per rank.
  [[nodiscard]] int count() const { return dual_ ? 2 * pp_ : v_ * pp_; }
  [[nodiscard]] int chunks() const { return dual_ ? 2 : v_; }

 private:
  bool dual_, v_shape_;
  int pp_, v_;
};

/// The ops of `stage`, in the order it runs them. Interleaved: micro-batches go through each
/// chunk in groups of `group` (0: pp), the last group holding the rest (Megatron-Core's
/// schedule table); plan.cpp refuses a last group smaller than pp, as Megatron-Core does.
/// `pairs` (1F1B without a pipeline, or interleaved): Megatron-Core's combined 1F1B
/// (--overlap-moe-expert-parallel-comm): one more warm-up forward, then each steady-state
/// forward runs overlapped with the backward after it (PipeOp::with_next).
std::vector<PipeOp> stage_order(PipeSchedule s, int pp, int vpp, int micro_batches, int stage, int group = 0,
                                bool pairs = false);

/// For each op of `ops` (one stage's order), the op after which its output leaves: itself,
/// but an overlapped pair's forward sends once the pair is done, and under DualPipe, where a whole backward (a B with its W right after) sends once its W is
/// done, an overlapped pair sends both outputs when its backward is whole, and a deferred send
/// waits for the next chunk (whole) too.
std::vector<std::size_t> output_after(PipeSchedule s, const std::vector<PipeOp>& ops);

/// The most micro-batch chunks whose activations `stage` holds at once under the schedule.
int peak_in_flight(PipeSchedule s, int pp, int vpp, int micro_batches, int stage, int group = 0, bool pairs = false);

}  // namespace wallsim::parallelism
