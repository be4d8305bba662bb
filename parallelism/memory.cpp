#include "parallelism/memory.hpp"

#include <algorithm>

#include "parallelism/pipeline.hpp"
#include "parallelism/step_program.hpp"

namespace wallsim::parallelism {
namespace {

constexpr double kWeightBytes = kWeightBytesPerParam;
// [A] fp8 training (Transformer Engine's recipe) keeps the bf16 weights and adds an fp8 copy of
// each weight the GPU holds, cast once per step: 1 byte per parameter.
constexpr double kFp8WeightCopyBytes = 1.0;
// [A] CUDA context, NCCL and framework buffers and allocator fragmentation per GPU; no
// published figure read, a round number of the size commonly reported for PyTorch jobs.
constexpr double kRuntimeReserveBytes = 2.0 * 1024 * 1024 * 1024;

}  // namespace

Memory gpu_memory(const Scenario& sc, const Plan& p) {
  const ModelSpec& m = *sc.model;
  Memory best;
  best.capacity = sc.cluster.gpu.memory;
  const auto shard = shard_of(m, p);
  const bool dropout = p.dropout;
  // The ranks that share each weight's copies (DualPipe keeps two, and shards over both).
  const double dp_dense = p.weight_shards();
  const double dp_expert = p.expert_weight_shards();
  const PipeMap map(p.schedule, p.pp, p.vpp);
  const auto pc = count_params(m);
  std::vector<StageMemory> stages;
  for (int s = 0; s < p.pp; ++s) {
    const auto [dense, expert] = rank_params(m, p, s);
    Memory mem;
    mem.capacity = best.capacity;
    mem.stage = s;
    const double wdiv_d = p.zero >= 3 ? dp_dense : 1.0, wdiv_e = p.zero >= 3 ? dp_expert : 1.0;
    const double gdiv_d = p.zero >= 2 ? dp_dense : 1.0, gdiv_e = p.zero >= 2 ? dp_expert : 1.0;
    const double odiv_d = p.zero >= 1 ? dp_dense : 1.0, odiv_e = p.zero >= 1 ? dp_expert : 1.0;
    const double weight_bytes = kWeightBytes + (p.fp8() ? kFp8WeightCopyBytes : 0.0);
    mem.weights = Bytes::of(weight_bytes * (dense / wdiv_d + expert / wdiv_e));
    // ZeRO-3 keeping the gathered weights after the forward holds them whole besides the
    // shard; gradients reduced once per step accumulate whole until then.
    // (In FP8 for the Float8 linears under the FSDP Float8 all-gather: counted with the
    // activations below, over the same layers.)
    const bool whole_grads = p.zero >= 2 && p.grad_reduce_per_step;
    mem.gradients = Bytes::of(p.grad_bytes * (whole_grads ? dense + expert : dense / gdiv_d + expert / gdiv_e));
    mem.optimizer = Bytes::of(p.optimizer_bytes * (dense / odiv_d + expert / odiv_e));
    // Activations: each micro-batch chunk in flight holds its layers' activations.
    const int in_flight = peak_in_flight(p.schedule, p.pp, p.vpp, static_cast<int>(p.micro_batches), s,
                                                            p.microbatch_group, p.overlap_ep);
    double per_chunk = 0.0, fp8_held = 0.0;
    bool head = false;  // holds the last stage (its logits)
    for (int c = 0; c < map.chunks(); ++c) {
      double chunk = 0.0;
      const PipePlace at = map.at(c, s);
      head = head || at.last;
      const int first = p.first_layer(at.layer_chunk, at.layer_stage);
      for (int i = first; i < first + p.layers_of(at.layer_chunk, at.layer_stage); ++i) {
        chunk += layer_activation_bytes(m, i, shard, p.recompute, dropout, p.recompute_modules).value();
        fp8_held += fp8_gathered_params(m, pc, p, i);
      }
      // Each multi-token-prediction module keeps its layer's activations (as the last layer)
      // and its projection's: the two norms' inputs and outputs, 2 bytes each (tp is 1).
      if (at.last && m.mtp_layers > 0) {
        const double tokens_h = static_cast<double>(p.micro_batch * p.seq_len) / p.cp * static_cast<double>(m.hidden);
        chunk += m.mtp_layers * (layer_activation_bytes(m, m.layers, shard, p.recompute, dropout, p.recompute_modules).value() +
                                 2.0 * 4.0 * tokens_h);
      }
      per_chunk = std::max(per_chunk, chunk);
    }
    if (p.zero >= 3 && !p.reshard_after_forward) {
      mem.weights += Bytes::of(weight_bytes * (dense + expert) - (weight_bytes - 1.0) * fp8_held);
    }
    double act = in_flight * per_chunk;
    const double tokens = static_cast<double>(p.micro_batch * p.seq_len) / p.cp;
    // fp32 logits, the head's and each multi-token-prediction module's
    if (head) act += (1.0 + m.mtp_layers) * 4.0 * tokens * static_cast<double>(m.vocab) / p.tp;
    // One layer's full activations while it is recomputed, and the backward's working set.
    if (p.recompute == Recompute::kFull || p.recompute == Recompute::kOp) {
      act += layer_activation_bytes(m, std::max(0, m.layers - 1), shard, Recompute::kNone, dropout).value();
    }
    mem.activations = Bytes::of(act);
    // Buffers: ZeRO-3 gathers one layer's weights at a time (1 + prefetch_layers: the one in
    // use and those prefetched); with bucketed gradient reduction one fp32 bucket staging copy of 40M
    // parameters (Megatron's default bucket); plus the runtime reserve.
    double buffers = kRuntimeReserveBytes + 4.0 * 40e6;
    if (p.zero >= 3 && p.reshard_after_forward) {
      buffers += (1.0 + p.prefetch_layers) * (kWeightBytes * std::max(pc.dense_layer, pc.moe_layer) / p.tp - fp8_gathered_params(m, pc, p, 0));
    }
    // Pipeline receive buffers beyond the activations they become (Megatron-Core's
    // p2p_communication allocates each received tensor, 2·b·s·h/(cp·tp) bytes as sent): the
    // gradient received for the backward in hand, and with overlapped p2p an activation and a
    // gradient posted ahead; DualPipe's two pipelines hold both directions' [A: the count of
    // buffers alive at once is read from the schedules, not measured].
    if (p.pp > 1) {
      const double message = 2.0 * static_cast<double>(p.micro_batch * p.seq_len) / p.cp * static_cast<double>(m.hidden) / p.tp;
      buffers += (p.overlap_p2p_comm ? 2.0 : 1.0) * (p.dual() ? 2.0 : 1.0) * message;
    }
    mem.buffers = Bytes::of(buffers);
    stages.push_back({s, mem.weights, mem.gradients, mem.optimizer, mem.activations, mem.buffers});
    if (s == 0 || mem.total().value() > best.total().value()) best = mem;
  }
  best.stages = std::move(stages);
  best.reserve_fraction = sc.training && sc.training->allocator_reserve ? *sc.training->allocator_reserve : kAllocatorReserve;
  return best;
}

}  // namespace wallsim::parallelism
