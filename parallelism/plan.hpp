// A parallel plan, resolved and validated against the model and the cluster: the degrees
// (tp, pp, dp, cp, ep), the batch split, ZeRO stage, recompute and pipeline schedule, and the
// layers of each pipeline stage. The rules are Megatron-LM's; a violation is a wallsim::Error
// naming the key.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/scenario.hpp"
#include "parallelism/model_math.hpp"

namespace wallsim::parallelism {

/// Mixed precision's bytes per parameter (ZeRO, Rajbhandari et al. SC'20, sec. 3.1): bf16
/// weights and gradients; the optimizer's master weights and moments follow the plan
/// (Plan::optimizer_bytes: K = 12 for Adam with fp32 ones).
inline constexpr double kWeightBytesPerParam = 2.0, kGradBytesPerParam = 2.0;

enum class PipeSchedule { kGpipe, kOneFOneB, kInterleaved, kZeroBubble, kZeroBubbleV, kDualPipe };
std::string to_string(PipeSchedule s);

struct Plan {
  int tp = 1, pp = 1, dp = 1, cp = 1, ep = 1, vpp = 1;
  /// Expert layers fold the tp x cp x dp ranks of a stage into etp x ep x expert-dp (Megatron's
  /// MoE parallel folding): experts are split over ep, each expert's GEMMs over etp.
  int etp = 1;
  /// Hybrid sharding (HSDP): ZeRO shards over groups of this many data-parallel ranks (times
  /// cp), replicated across dp / dp_shard groups; dp when not hybrid.
  int dp_shard = 1;
  bool reshard_after_forward = true;  ///< ZeRO-3: gather again for the backward (else keep)
  int prefetch_layers = 1;  ///< ZeRO-3: a layer's gather starts with the layer this many before it
  bool overlap_ep = false;  ///< Megatron-Core's combined 1F1B: forward and backward pairs overlapped
  /// ZeRO-3 gathers the linears' weights in FP8 (torchao's FSDP Float8 all-gather).
  bool fp8_gather = false;
  bool grad_reduce_per_step = false;  ///< ZeRO-2/3: reduce-scatter once per step (else per micro-batch)
  /// Bytes per gradient value as they are accumulated, held and reduced (parallel.grad_reduce_dtype).
  double grad_bytes = 2.0;
  bool sp = false;
  int zero = 0;
  Recompute recompute = Recompute::kNone;
  unsigned recompute_modules = kCoreAttn;  ///< RecomputeModule bits, under selective recompute
  PipeSchedule schedule = PipeSchedule::kOneFOneB;
  long long micro_batch = 1, global_batch = 1, seq_len = 0;
  long long micro_batches = 1;  ///< per pipeline per step: global_batch / (micro_batch * dp)
  /// Interleaving: micro-batches go through each chunk in groups of this many (pp by default;
  /// pipeline.hpp); 0 when not interleaved.
  int microbatch_group = 0;
  std::string precision = "bf16";
  [[nodiscard]] bool fp8() const { return precision == "fp8"; }
  /// FP8 GEMMs scaled per 1 x 128 and 128 x 128 tile (training.fp8_recipe: blockwise).
  bool fp8_blockwise = false;
  double capacity_factor = 1.0;
  /// MoE: bytes per value of the forward dispatch (2, or fp8's 1 plus a 4-byte scale per 128
  /// values: DeepSeek-V3's 1x128 activation tiles, technical report sec. 3.3.2).
  double dispatch_bytes = 2.0;
  /// MoE dispatch as DeepEP runs it (parallel.moe_token_dispatcher: deepep): the share of a
  /// rank's dispatch buffer (top_k copies a token) it sends once to each other scale-up domain
  /// of its EP group: the chance a token's experts touch a given domain, over top_k. Negative
  /// under the all-to-all dispatcher.
  double dispatch_rail_share = -1.0;
  [[nodiscard]] bool deepep() const { return dispatch_rail_share >= 0.0; }
  bool mtp = false;  ///< the model has multi-token prediction modules (the event engine runs them)
  bool flash_attention = true;
  bool eager = false;    ///< training.kernels: eager PyTorch modules op by op, else fused kernels
  bool dropout = false;  ///< training.dropout, else the model's
  /// The optimizer's bytes per parameter beyond the bf16 weights and gradients (ZeRO's K):
  /// master weights plus its moments (Adam, AdamW, LAMB: 2; SGD with momentum: 1).
  double optimizer_bytes = 12.0;
  double optimizer_flops = 10.0;  ///< per parameter per step ([A]: it is memory-bound)
  std::string optimizer = "adam";
  bool overlap_grad_reduce = true;  ///< DP gradient buckets start during the last backward
  bool overlap_param_gather = false;  ///< ZeRO-1/2's weight all-gathers overlap the next forward
  /// Pipeline sends overlap compute (else the next kernel waits for them, as batched p2p does).
  bool overlap_p2p_comm = false;
  bool tp_comm_overlap = false;     ///< SP's all-gathers and reduce-scatters pipelined with GEMMs
  bool wafer_pipelined = false;     ///< wafer-scale: layers resident in mesh regions (else streamed)
  /// Layers of each virtual stage, in model order: chunk c of stage s is entry c * pp + s.
  std::vector<int> chunk_layers;
  /// Rank layout, fastest-varying first: a permutation of tp, cp, dp, pp (ep lives in cp x dp).
  std::array<std::string, 4> order = {"tp", "cp", "dp", "pp"};
  [[nodiscard]] long long gpus() const { return static_cast<long long>(tp) * pp * dp * cp; }
  /// Ways each MoE layer's experts are split (ep x etp), and the data-parallel degree of
  /// expert weights (the stage's tp x cp x dp ranks over that).
  [[nodiscard]] int expert_shards() const { return ep * etp; }
  [[nodiscard]] int expert_dp() const { return tp * cp * dp / expert_shards(); }
  /// The first layer of virtual stage (chunk, stage).
  [[nodiscard]] int first_layer(int chunk, int stage) const;
  [[nodiscard]] int layers_of(int chunk, int stage) const { return chunk_layers[chunk * pp + stage]; }
  /// DualPipe (DeepSeek-V3): pipeline rank s holds model stage s of the forward direction and
  /// its mirror pp-1-s of the reverse one, two copies of every stage's weights in all.
  [[nodiscard]] bool dual() const { return schedule == PipeSchedule::kDualPipe; }
  /// The first and the last virtual stage on one rank (DualPipe; ZB-V's V), so a tied or
  /// MTP-read word embedding has no second copy to keep in sync.
  [[nodiscard]] bool ends_together() const { return dual() || schedule == PipeSchedule::kZeroBubbleV; }
  /// The ranks that hold each copy of a weight: data x context parallel, twice under DualPipe.
  [[nodiscard]] int weight_copies() const { return dp * cp * (dual() ? 2 : 1); }
  /// The ranks ZeRO shards a weight's states over: all its copies, or under hybrid sharding
  /// the copies in one shard group.
  [[nodiscard]] int weight_shards() const { return dp_shard * cp * (dual() ? 2 : 1); }
  [[nodiscard]] bool hybrid() const { return dp_shard < dp; }
  /// The key of a choice only the event engine runs (DualPipe, FSDP's keep-and-reduce-once,
  /// hybrid sharding, FP8 dispatch), or empty: the composed step refuses such plans.
  [[nodiscard]] std::string event_engine_only() const;
  [[nodiscard]] int expert_copies() const { return expert_dp() * (dual() ? 2 : 1); }
  /// The ranks ZeRO shards an expert weight's states over: all its copies, or under hybrid
  /// sharding the expert-data-parallel group's share in one of the dp / dp_shard replicas
  /// (Megatron-Core's distributed-optimizer instances split both groups alike).
  [[nodiscard]] int expert_weight_shards() const { return hybrid() ? expert_copies() / (dp / dp_shard) : expert_copies(); }
};

/// The plan of a scenario (its parallel: and training: sections), checked against its model
/// and cluster. Errors name the key: "parallel.tp: 6 does not divide heads 64".
Plan make_plan(const Scenario& s);

/// Parameters of layer `i` on one GPU before ZeRO: the dense part split over tp, the routed
/// experts over ep x etp (the one home of this formula).
struct LayerParams {
  double dense = 0, expert = 0;
};
LayerParams layer_params(const ModelSpec& m, const ParamCount& pc, const Plan& p, int i);
/// What rides with the last stage's head on one GPU before ZeRO: the LM head and final norm,
/// and multi-token prediction's modules; under plain pipelines with MTP or tied embeddings,
/// the copy of the word embedding the last stage then holds (Megatron-Core keeps one and
/// all-reduces its gradients with the first stage's; DualPipe's last stage's rank holds the
/// first stage's).
LayerParams head_params(const ModelSpec& m, const ParamCount& pc, const Plan& p);

/// Of layer `i`'s parameters on one GPU, those FSDP gathers in FP8 (Plan::fp8_gather: the
/// Float8 linears, every weight matrix of a dense layer but its norms; else 0), and how many
/// such linears the layer has (each one amax in the scales' all-reduce).
double fp8_gathered_params(const ModelSpec& m, const ParamCount& pc, const Plan& p, int i);
int fp8_linears(const ModelSpec& m, const Plan& p, int i);

/// Parameters of pipeline stage `stage` on one GPU before ZeRO: (dense, expert), its layers'
/// shares plus the embedding (first stage) and the LM head and final norm (last).
std::pair<double, double> stage_params(const ModelSpec& m, const Plan& p, int stage);
/// Parameters one GPU of pipeline rank `stage` holds before ZeRO: its chunks' (PipeMap: under
/// DualPipe its mirror stage's too), with the embedding and the head where they sit.
std::pair<double, double> rank_params(const ModelSpec& m, const Plan& p, int stage);

/// How each layer of `p` is sharded and batched on one GPU.
Shard shard_of(const ModelSpec& m, const Plan& p);

/// The optimizer's step over `params` parameters on one GPU (memory-bound; Plan::optimizer):
/// it reads the gradients, master weights and moments and writes the weights and moments.
Kernel optimizer_kernel(const Plan& p, double params);

/// Layers spread over `parts` as evenly as possible, the extra ones on the middle stages
/// (Megatron's lighter first and last stages carry the embedding and the head).
std::vector<int> spread_layers(int layers, int parts);

}  // namespace wallsim::parallelism
