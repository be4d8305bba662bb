// The validated scenario: what a user asked wallsim to simulate. Loading resolves presets by
// name (data/*.yaml) or takes inline mappings, applies `--set KEY=VALUE` overrides, rejects
// unknown keys with a suggestion, and parses every unit. Family-specific fabric keys
// (nodes_per_leaf, k, dims, ...) stay as a Config for the topology module to read and check.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/presets.hpp"
#include "core/units.hpp"

namespace wallsim {

/// One link class: bandwidth per direction, latency, energy per bit.
struct LinkSpec {
  Bandwidth bandwidth;  ///< line rate per direction
  Seconds latency;
  EnergyPerBit energy;
  std::string preset;  ///< the links.yaml preset it came from, or ""
  /// Fraction of the line rate that carries payload (packet headers, NCCL's protocol): the
  /// fabric is built with payload() as the link bandwidth.
  double efficiency = 1.0;
  /// Scale-up switches that reduce in the network (NVLink SHARP) do so at this fraction of the
  /// payload rate; 0 = none.
  double switch_reduction = 0.0;
  /// NCCL's channels (a CTA, an SM each) for a large collective inside one scale-up domain.
  int nccl_channels = 0;
  /// NCCL's channels across domains for each GPU the group holds in a node (its NIC's rings).
  int nccl_channels_per_gpu = 0;
  [[nodiscard]] Bandwidth payload() const { return bandwidth * efficiency; }
};

/// An accelerator: a GPU or a wafer-scale engine.
struct GpuSpec {
  std::string name;  ///< preset key or "custom"
  std::string description;
  FlopRate bf16_dense;
  FlopRate fp8_dense;   ///< 0 when the part has no FP8 tensor cores
  Bytes memory;         ///< HBM (GPU) or on-chip SRAM (wafer)
  Bandwidth memory_bandwidth;
  Bandwidth scale_up_bandwidth;  ///< per GPU, per direction
  Watts tdp;
  Watts idle_power;              ///< 0 when not given
  Watts min_power_limit;         ///< lowest power cap the board accepts (nvidia-smi); 0 when not given
  Frequency base_clock;
  Frequency boost_clock;          ///< the clock the dense peaks are quoted at
  /// The clock a full-load GEMM holds at the TDP, measured; 0 = the boost clock (the peaks).
  Frequency sustained_clock;
  EnergyPerBit memory_energy;    ///< 0 when not given
  // Achieved fractions of peak (roofline efficiencies) and kernel costs; 0 = not given.
  double gemm_efficiency = 0.0;       ///< large dense GEMMs, fraction of the dense peak
  /// Large FP8 GEMMs reach this times the efficiency large BF16 ones reach, each against its own
  /// dense peak (a measured FP8 over BF16 speed-up, not the peaks' 2x). 1 when not measured.
  double fp8_efficiency_ratio = 1.0;
  /// The same for FP8 GEMMs of the blockwise recipe (training.fp8_recipe: blockwise, DeepSeek-V3's:
  /// activations scaled per 1 x 128 tile, weights per 128 x 128 block, the FP32 partial sums
  /// rescaled every 128 of depth): forward and data-gradient GEMMs, then weight-gradient ones
  /// (both operands scaled per 128 tokens, accumulated into the FP32 gradient). 0 = not measured.
  double fp8_blockwise_ratio = 0.0;
  double fp8_blockwise_wgrad_ratio = 0.0;
  /// Per output tile, the prologue and epilogue cost as much as this much reduction depth: a
  /// GEMM of depth k runs at gemm_efficiency x k / (k + gemm_depth_overhead). 0 = none.
  double gemm_depth_overhead = 0.0;
  /// Fused (flash) attention's forward, fraction of the dense peak reached by its score and
  /// value matmuls once a query block's loop over the keys is long (FLOPs counted as
  /// FlashAttention counts them: 4 x queries x keys x head_dim per head, half when causal).
  double attention_efficiency = 0.0;
  /// Its backward, against FlashAttention's backward count (2.5x the forward's: five matmuls
  /// for the forward's two, the scores recomputed); 0 = attention_efficiency.
  double attention_backward_efficiency = 0.0;
  /// Per query block, loading the queries and writing the output cost as much as this many
  /// more keys of the block's loop: attention over n keys runs at n / (n + overhead). 0 = none.
  double attention_depth_overhead = 0.0;
  /// The same for the backward (per key block: its K/V loaded, dK/dV written, dQ accumulated);
  /// 0 = attention_depth_overhead.
  double attention_backward_depth_overhead = 0.0;
  double memory_efficiency = 0.0;     ///< streaming kernels, fraction of HBM bandwidth
  /// A fused norm's backward, fraction of HBM bandwidth: besides each token's gradient it sums
  /// the weight's gradient over the tokens (partial sums per thread block, then reduced), which
  /// streams slower than an element-wise pass. 0 = memory_efficiency.
  double norm_backward_efficiency = 0.0;
  Seconds kernel_overhead;            ///< fixed cost per kernel (launch, tail)
  // Shape effects (tile and wave quantization); 0 = not modelled.
  int sms = 0;                        ///< streaming multiprocessors: thread blocks run in waves of this many
  int gemm_tile_rows = 0, gemm_tile_cols = 0;  ///< output tile of one GEMM thread block (the most efficient)
  /// cuBLAS also picks smaller tiles (NVIDIA's Matrix Multiplication Background guide, sec. 2.3:
  /// 64 to 256 a side, no larger than gemm_tile): one of r x c does r c multiply-adds per r + c
  /// values loaded, I = r c / (r + c), and runs at (1 + this / I_largest) / (1 + this / I) of the
  /// largest's rate. 0 = only gemm_tile (and its transpose).
  double gemm_tile_intensity = 0.0;
  int attention_block = 0;            ///< query rows of one fused-attention thread block
  /// Special-function results (exp2) per SM per clock: fused attention's softmax takes one
  /// exponential per score each pass, on these units beside the tensor cores. 0 = not modelled.
  int sfu_per_sm_clock = 0;
  /// How far the softmax's exponentials and the score matmuls overlap (FlashAttention-4's
  /// schedule runs them side by side; FlashAttention-2's warps in turn): the time is the longer
  /// of the two plus (1 - this) of the shorter. 0 = they add up, 1 = the longer hides the other.
  double attention_softmax_overlap = 0.0;
  Watts dynamic_power;                ///< full-load dynamic draw at the full-load clock (sustained, else boost); 0 = tdp - idle
  long long cores = 0;           ///< wafer-scale: compute cores on the wafer (0 for a GPU)
  Bytes sram_per_core;           ///< wafer-scale: local memory per core
  int routing_entries = 0;       ///< wafer-scale: routes (colors) one core's router can hold; 0 = unknown
  Watts core_power;              ///< wafer-scale: one core's draw while computing; 0 = unknown
};

/// The fabric between scale-up domains. `params` holds the whole mapping for the topology
/// module, which reads the family-specific keys and rejects unknown ones.
struct ScaleOutSpec {
  std::string topology;  ///< clos, fat-tree, dragonfly, torus, ...
  LinkSpec link;
  Seconds switch_latency;
  /// Flows the collective library opens per connection between two GPUs, each hashed onto its
  /// own equal-cost path (NCCL_IB_QPS_PER_CONNECTION, default 1; Llama 3's NCCLX: 16).
  int flows_per_connection = 1;
  Config params{YAML::Node(), "cluster.scale_out"};
};

struct StorageSpec {
  Bandwidth bandwidth;  ///< aggregate, per direction
  int nodes = 1;
};

struct ClusterSpec {
  std::string name;
  std::string description;
  GpuSpec gpu;
  long long nodes = 1;
  int gpus_per_node = 1;
  int scale_up_domain = 0;  ///< GPUs per scale-up (NVLink) domain; defaults to gpus_per_node
  LinkSpec scale_up;
  std::optional<ScaleOutSpec> scale_out;
  std::optional<StorageSpec> storage;
  /// Wafer-scale clusters in weight streaming: the external store of weights and optimizer
  /// state (Cerebras MemoryX); unset = not limited.
  std::optional<Bytes> external_memory;
  /// cluster.power_cap: each GPU's power limit (nvidia-smi -pl); unset = its TDP. The CLI's
  /// --power-cap (and sweep's power_cap) override it.
  std::optional<Watts> power_cap;
  /// cluster.slow_gpus: stragglers (a throttled or failing GPU), each computing at `speed` of
  /// its peers' rate; `gpus` sorted, resolved from a list or a fraction of the cluster.
  struct SlowGpus {
    std::vector<long long> gpus;
    double speed = 1.0;
  };
  std::optional<SlowGpus> slow_gpus;
  /// cluster.degraded_links: cables running at `factor` of their bandwidth (a link trained
  /// down to fewer lanes or a lower rate), named FROM-TO by node names as `topo` prints them.
  struct DegradedLink {
    std::string link;
    double factor = 1.0;
    std::string path;  ///< the scenario key, for errors the fabric finds (no such link)
  };
  std::vector<DegradedLink> degraded_links;
  [[nodiscard]] long long gpus() const { return nodes * gpus_per_node; }
  /// GPU g's compute rate relative to its peers (1 unless it is a slow GPU).
  /// SMs NCCL holds for a collective across domains whose group has `in_node` GPUs of a node.
  [[nodiscard]] long long nccl_sms_across(long long in_node) const {
    return scale_out ? std::min<long long>(64, 1LL * scale_out->link.nccl_channels_per_gpu * in_node) : 0;
  }
  [[nodiscard]] double speed_of(long long g) const {
    if (!slow_gpus) return 1.0;
    return std::binary_search(slow_gpus->gpus.begin(), slow_gpus->gpus.end(), g) ? slow_gpus->speed : 1.0;
  }
};

/// A decoder-only transformer, dense or mixture-of-experts.
struct ModelSpec {
  std::string name;
  std::string description;
  int layers = 0;
  long long hidden = 0;
  int heads = 0;
  int kv_heads = 0;           ///< = heads for MHA; fewer for GQA/MQA
  long long head_dim = 0;     ///< defaults to hidden / heads
  long long ffn = 0;          ///< dense MLP inner size
  long long vocab = 0;
  std::string activation = "swiglu";  ///< swiglu or gelu
  bool tied_embeddings = false;
  long long seq_len = 0;      ///< default training sequence length, 0 when not given
  // Mixture of experts.
  int experts = 0;            ///< routed experts per MoE layer; 0 = dense
  int shared_experts = 0;
  int top_k = 0;
  long long moe_ffn = 0;      ///< inner size of one expert
  int dense_layers = 0;       ///< leading layers that stay dense (DeepSeek-V3: 3)
  /// Group-limited routing (DeepSeek's node-limited routing; HF config's n_group and
  /// topk_group, Megatron-Core's --moe-router-num-groups and --moe-router-group-topk): the
  /// routed experts in this many equal groups, each token's experts in at most
  /// `router_group_topk` of them. 0: any expert.
  int router_groups = 0;
  int router_group_topk = 0;
  /// Multi-token prediction modules (DeepSeek-V3; HF's num_nextn_predict_layers, Megatron-Core's
  /// --mtp-num-layers): each a transformer layer like the last, a projection of the previous
  /// depth's hidden state and the next token's embedding, and the shared head and loss.
  int mtp_layers = 0;
  // Multi-head latent attention (DeepSeek-V2/V3); all 0 for standard attention.
  long long q_lora_rank = 0;
  long long kv_lora_rank = 0;
  long long qk_nope_head_dim = 0;
  long long qk_rope_head_dim = 0;
  long long v_head_dim = 0;
  double published_params = 0.0;  ///< parameter count stated by the source, for checks
};

struct TrainingSpec {
  long long seq_len = 0;
  long long global_batch = 0;  ///< sequences per step
  long long micro_batch = 1;
  std::string precision = "bf16";
  /// FP8 scaling: "tensorwise" (Transformer Engine's delayed or current scaling, one factor per
  /// tensor) or "blockwise" (DeepSeek-V3's 1 x 128 and 128 x 128 tiles; Megatron-Core's
  /// --fp8-recipe blockwise).
  std::string fp8_recipe = "tensorwise";
  double capacity_factor = 1.0;  ///< MoE: expert capacity over the even share of tokens
  /// MoE: the forward dispatch's precision; "fp8" as DeepSeek-V3 dispatches (the combine and
  /// every backward exchange stay bf16).
  std::string moe_dispatch = "bf16";
  bool flash_attention = true;   ///< fused attention: the s x s scores are never stored
  std::string optimizer = "adam";         ///< adam, adamw, lamb, sgd (with momentum)
  std::string master_weights = "fp32";    ///< the optimizer's copy of the weights: fp32 or bf16
  std::string optimizer_states = "fp32";  ///< its moments (momentum, variance): fp32 or bf16
  std::optional<bool> dropout;            ///< unset: the model's (GPT-style models have it)
  /// What PyTorch's caching allocator holds beyond the tensors, as a fraction of them (unset:
  /// engine::kAllocatorReserve, measured; 0 for an allocator that returns what it frees, e.g.
  /// expandable segments).
  std::optional<double> allocator_reserve;
  /// The kernels a layer runs: "fused" (Megatron-LM / Transformer Engine: fused norms, SwiGLU,
  /// RoPE, QKV and gate/up GEMMs) or "eager" (PyTorch eager modules, op by op).
  std::string kernels = "fused";
};

struct ParallelSpec {
  int tp = 1, pp = 1, dp = 0, cp = 1, ep = 1;  ///< dp = 0: derived from the GPU count
  int etp = 0;  ///< expert tensor parallelism (Megatron's --expert-tensor-parallel-size); 0 = tp
  bool sp = false;
  int vpp = 1;
  /// Interleaving: micro-batches run through each chunk in groups of this many (Megatron-Core's
  /// --microbatch-group-size-per-virtual-pipeline-stage); 0 = pp.
  int microbatch_group = 0;
  std::string schedule = "1f1b";
  int zero = 0;
  std::string recompute = "none";
  /// Under selective recompute, the modules recomputed (Megatron-Core's --recompute-modules:
  /// core_attn, layernorm, mla_up_proj, moe_act); empty = core_attn.
  std::vector<std::string> recompute_modules;
  std::vector<int> stage_layers;
  std::string order = "tp-cp-ep-dp-pp";  ///< rank layout, fastest-varying first (Megatron)
  /// Gradient reduction overlapped with the backward (Megatron-LM's --overlap-grad-reduce);
  /// false: it starts once the backward is done (Megatron-LM before 2023).
  bool overlap_grad_reduce = true;
  /// The distributed optimizer's parameter all-gathers overlapped with the next step's forward,
  /// bucket by bucket (Megatron-LM's --overlap-param-gather; default off, as there).
  bool overlap_param_gather = false;
  /// Pipeline sends and receives overlapped with compute (Megatron-LM's --overlap-p2p-communication,
  /// on by default and only honoured under the interleaved schedule; DualPipe's runtime overlaps
  /// its own); otherwise batched and waited for before the next kernel. Unset: the schedule's.
  std::optional<bool> overlap_p2p_comm;
  /// TP communication pipelined with the GEMMs beside it (Megatron-Core's --tp-comm-overlap,
  /// Transformer Engine's userbuffers; needs sequence parallelism). Megatron's default: off.
  bool tp_comm_overlap = false;
  /// How MoE tokens reach their experts (Megatron-Core's --moe-token-dispatcher-type):
  /// "alltoall", one copy per expert over an all-to-all, or "deepep" (DeepEP, Megatron's flex
  /// dispatcher): one copy per scale-up domain to the same-index GPU there, forwarded inside it.
  std::string moe_token_dispatcher = "alltoall";
  /// Hybrid sharding (FSDP2's HSDP, torchtitan's data_parallel_shard_degree): ZeRO's states
  /// are sharded over groups of this many data-parallel ranks and replicated across the
  /// groups (dp / dp_shard of them); 0 = shard over all dp ranks.
  int dp_shard = 0;
  /// ZeRO-3 (FSDP): free a layer's gathered weights after its forward and gather them again for
  /// its backward (DeepSpeed's and FSDP's default), or keep them (FSDP's
  /// reshard_after_forward=False; torchtitan's default under pipelines, where it also keeps
  /// them through every micro-batch: one gather per layer per step).
  bool reshard_after_forward = true;
  /// ZeRO-3: how many layers ahead a layer's weights are gathered (FSDP2's implicit prefetch
  /// is 1; its set_modules_to_forward_prefetch / _backward_prefetch name more).
  int prefetch_layers = 1;
  /// MoE: each steady-state forward overlapped with the backward after it, so that one's
  /// expert all-to-alls run beside the other's compute (Megatron-Core's
  /// --overlap-moe-expert-parallel-comm, its combined 1F1B). Megatron's default: off.
  bool overlap_moe_expert_parallel_comm = false;
  /// ZeRO-2/3: reduce-scatter each layer's gradients after its backward in every micro-batch
  /// ("microbatch", DeepSpeed's) or once per step, accumulating them unsharded until then
  /// ("step": PyTorch pipelining's REDUCE_GRAD, as torchtitan runs FSDP with pipelines).
  std::string grad_reduce = "microbatch";
  bool grad_reduce_set = false, reshard_set = false;
  /// The data type gradients are accumulated and reduced in over the data-parallel ranks
  /// (FSDP's MixedPrecisionPolicy reduce_dtype, torchtitan's training.mixed_precision_reduce,
  /// Megatron-LM's fp32 main grads unless --grad-reduce-in-bf16): "bf16" or "fp32".
  std::string grad_reduce_dtype = "bf16";
  /// ZeRO-3 under FP8 training: all-gather the Float8 linears' weights cast to FP8, 1 byte a
  /// parameter (torchao's WeightWithDynamicFloat8CastTensor, torchtitan's
  /// float8.enable_fsdp_float8_all_gather), their scales computed once a step after the
  /// optimizer by one all-reduce of every such weight's amax (float8.precompute_float8_
  /// dynamic_scale_for_fsdp). Norms, the embedding and the output layer stay in bf16.
  bool fsdp_float8_all_gather = false;
  /// Wafer-scale clusters: "streaming" (weights stream in from external memory layer by
  /// layer) or "pipelined" (every layer resident in its own region of the mesh).
  std::string wafer_mode = "streaming";
};

/// One root cause of job interruptions (a row of Llama 3's Table 5).
struct FailureCause {
  std::string name;
  /// What fails: gpu, node, nic (the node leaves until repaired), link (a scale-out cable:
  /// rerouted, the job runs slower until repaired), software (nothing leaves), planned
  /// (maintenance: a checkpoint is taken first, no work is lost).
  std::string component;
  std::string per;       ///< what the rate counts per: gpu, node or job
  Frequency rate;        ///< interruptions per second per unit (`per`)
  Seconds repair;        ///< how long the failed part is out (0 for software and planned)
  double weibull_shape = 1.0;  ///< 1 = exponential lifetimes
  std::string source;
};

struct FailureSpec {
  std::string preset;
  std::vector<FailureCause> causes;
  Seconds detection;  ///< failure to the job's stop (NCCL timeout, health checks)
  Seconds restart;    ///< rescheduling and process start, before the checkpoint is read
  int spare_nodes = 0;
};

struct RunSpec {
  double tokens = 0.0;
  std::optional<Seconds> checkpoint_interval;  ///< nullopt = auto (the best, by search)
  bool async_checkpoint = false;  ///< snapshot to host memory, then write while training
  Bandwidth snapshot_bandwidth;   ///< GPU to host copy, per GPU (async only)
  std::optional<FailureSpec> failures;
};

struct Scenario {
  std::string name;
  std::string description;
  std::string source;
  ClusterSpec cluster;
  std::optional<ModelSpec> model;
  std::optional<TrainingSpec> training;
  std::optional<ParallelSpec> parallel;
  std::optional<RunSpec> run;
  std::string resolved_yaml;  ///< the scenario after presets and overrides, for output files
};

/// Loads a scenario file; `overrides` are `--set` assignments applied in order.
Scenario load_scenario(const std::string& path, const std::vector<std::string>& overrides,
                       const Presets& presets);
/// The same from YAML text (`origin` names it in errors).
Scenario parse_scenario(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides, const Presets& presets);

/// Parsers of one section each, usable on their own (e.g. `cluster:` of a topology spec).
ClusterSpec parse_cluster(const Config& c, const Presets& presets);
GpuSpec parse_gpu(const Config& c, const Presets& presets);
LinkSpec parse_link(const Config& c, const Presets& presets);
ModelSpec parse_model(const Config& c, const Presets& presets);

}  // namespace wallsim
