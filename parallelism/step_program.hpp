// The step program of a plan (program.hpp): every rank's kernels, collectives and sends for
// one training step, as Megatron-LM runs them by default.
//
// * A layer's forward is its kernels (model_math.hpp) on the compute stream; with tensor
//   parallelism, an all-gather (SP) after each norm and a reduce-scatter (SP) or all-reduce
//   after the attention and MLP blocks, on the compute stream (not overlapped: Megatron's
//   default; with tp_comm_overlap, in chunks on the side stream, pipelined with the GEMMs).
//   The backward runs the blocks in reverse: each GEMM's data and weight gradients,
//   element-wise kernels' backward, fused attention's backward (twice its forward), and the
//   mirrored TP collectives; selective recompute reruns core attention, full recompute the
//   whole forward with its collectives, before the layer's backward.
// * Pipeline stages run their schedule's passes (pipeline.hpp); activations and gradients go
//   one way per boundary, split over the TP ranks (without SP, re-gathered on arrival).
// * Data parallelism: with ZeRO 0/1, one gradient bucket per layer, all-reduced
//   (reduce-scattered with ZeRO-1) on the data-parallel stream as soon as the layer's last
//   backward ends (with overlap_grad_reduce; else after the stage's last backward); with
//   ZeRO-2/3 each layer's gradients are reduce-scattered after its backward in every
//   micro-batch, and ZeRO-3 gathers each layer's weights before its forward and its backward
//   on a stream of their own, one layer ahead (FSDP's prefetch). The optimizer (Adam over the
//   rank's shard) follows the last bucket; ZeRO-1/2 all-gather the updated weights.
//
// * Expert parallelism: an all-to-all dispatches each GPU's routed tokens to their experts
//   before the expert GEMMs and one combines them after, both ways in backward; expert weights'
//   gradients are reduced over the expert-data-parallel group, the rest over data-parallel.
// * Context parallelism: ring attention, fused attention in cp pieces overlapped with the
//   K/V ring steps on the side stream; the dense gradients are reduced over data x context.
//
// * Zero-bubble (ZB-H1): the backward computes input gradients only; each W pass computes its
//   micro-batch's weight gradients (attention's batched GEMMs excepted: both their operands are
//   activations) and releases the layer's gradient buckets.
// * DualPipe: each rank holds two stages (pipeline.hpp's PipeMap), their gradients reduced
//   over both copies; an overlapped pair's backward runs on the second compute stream, whose
//   kernels take the SMs in turn with the compute stream's.
// * FSDP's choices: hybrid sharding (ZeRO in shard groups, then an all-reduce across the
//   replicas), gradients reduce-scattered once per step, weights kept after the forward.
//
// Not yet built (the builder says so with an Error): context parallelism with unfused attention.
#pragma once

#include "parallelism/program.hpp"

namespace wallsim::parallelism {

/// The most ops a step program holds (one program per pipeline stage: the other ranks of a
/// stage run it renamed, RankProgram::like): the event engine keeps each op of every rank class
/// it simulates and its state, about 550 bytes (Llama 3 70B at pp 4: 45K ops).
inline constexpr std::size_t kMaxProgramOps = 16'000'000;

/// The step program of `p` for model `m`; rank r runs on endpoint r. An Error naming
/// training.global_batch when it would hold more than kMaxProgramOps ops.
Program step_program(const ModelSpec& m, const Plan& p);

}  // namespace wallsim::parallelism
