// Memory per GPU of a plan on a GPU cluster: weights, gradients and optimizer state as ZeRO
// shards them, the activations of the micro-batches a pipeline schedule holds in flight, and
// the buffers a framework keeps (the runtime's, a gradient bucket's staging copy, ZeRO-3's
// gathered layers, pipeline receive buffers). The one home of these formulas: the composed
// step, the event engine, search, sweep and validate all read them from here.
#pragma once

#include <cmath>
#include <vector>

#include "core/scenario.hpp"
#include "core/units.hpp"
#include "parallelism/plan.hpp"

namespace wallsim::parallelism {

/// One GPU's memory on one pipeline stage.
struct StageMemory {
  int stage = 0;
  Bytes weights, gradients, optimizer, activations, buffers;
  [[nodiscard]] Bytes total() const { return weights + gradients + optimizer + activations + buffers; }
};

/// A plan whose most loaded stage is within this fraction of the GPU's memory, either side,
/// is borderline: neither refused nor said to fit ([A]: the memory model counts tensors, not
/// the caching allocator's fragmentation or the framework's workspaces, which move a real run
/// by a few percent either way).
inline constexpr double kBorderlineMemory = 0.02;
/// What PyTorch's caching allocator reserves beyond the tensors it holds at the peak, as a
/// fraction of them: max reserved over max allocated in Megatron-LM's measurement of a
/// 14-layer DeepSeek-V3 proxy on H100 (TP 1, PP 4, EP 16, bf16): 74,306/65,204, 58,770/52,228,
/// 51,772/45,201 and 56,328/48,166 MB on its four pipeline ranks, 1.140, 1.125, 1.145 and 1.169,
/// mean 1.145 [V: NVIDIA/Megatron-LM megatron/core/transformer/README.md, "Memory
/// consumption", baseline without offloading]. One framework's run: GMLake (ASPLOS'24) reads
/// 2-8 % under ZeRO-3 fine-tuning without recomputation and up to ~50 % with LoRA and
/// recomputation [S]. A scenario sets its own (training.allocator_reserve).
inline constexpr double kAllocatorReserve = 0.145;

/// Memory per GPU on the most loaded stage, and on every stage.
struct Memory {
  Bytes weights, gradients, optimizer, activations, buffers;
  Bytes capacity;
  int stage = 0;  ///< the most loaded stage
  std::vector<StageMemory> stages;  ///< every stage, in order
  double reserve_fraction = 0.0;  ///< the caching allocator's reserve (kAllocatorReserve)
  [[nodiscard]] Bytes total() const { return weights + gradients + optimizer + activations + buffers; }
  /// What the allocator holds at the peak: the tensors and its reserve beyond them.
  [[nodiscard]] Bytes reserved() const { return total() * (1.0 + reserve_fraction); }
  [[nodiscard]] bool fits() const { return total().value() <= capacity.value(); }
  /// Not refused, but not sure to fit: within kBorderlineMemory of the capacity, either side,
  /// or under it with the allocator's reserve over it.
  [[nodiscard]] bool borderline() const {
    if (over()) return false;
    return std::abs(total().value() - capacity.value()) <= kBorderlineMemory * capacity.value() ||
           reserved().value() > capacity.value();
  }
  /// Over the capacity by more than the borderline: the plan is refused.
  [[nodiscard]] bool over() const { return total().value() > capacity.value() * (1.0 + kBorderlineMemory); }
};
/// Memory per GPU of plan `p` on the GPU cluster of `sc` (engine::memory_per_gpu adds wafers).
Memory gpu_memory(const Scenario& sc, const Plan& p);

}  // namespace wallsim::parallelism
