// Model math for decoder-only transformers, dense or mixture-of-experts: parameter counts,
// the work of one layer as a list of kernels (FLOPs and HBM bytes, sharded by the plan), and
// activation memory as derived by Korthikanti et al., "Reducing Activation Recomputation in
// Large Transformer Models" (MLSys'23), section 4, generalised to GQA/MLA, SwiGLU and no dropout.
//
// FLOP conventions: a GEMM of m x k by k x n is 2mkn; attention scores and values are counted
// with causal masking (half of the square, what fused kernels compute); backward is twice the
// forward (data and weight gradients); model FLOPs exclude recompute, hardware FLOPs include it.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "core/scenario.hpp"
#include "core/units.hpp"

namespace wallsim::parallelism {

/// Parameter counts (no biases; Llama-style RMSNorm has one vector per norm).
struct ParamCount {
  double total = 0;       ///< every parameter
  double embedding = 0;   ///< input embedding table
  double lm_head = 0;     ///< output projection (0 when tied)
  double dense_layer = 0; ///< one dense layer
  double moe_layer = 0;   ///< one MoE layer (all experts)
  double moe_experts = 0; ///< the routed experts of one MoE layer
  double active = 0;      ///< parameters one token passes through (MoE: top-k experts)
  /// One multi-token-prediction module beside the embedding and head it shares: its layer (as
  /// the model's last), projection and norms. Not in `total` (the published counts leave it out).
  double mtp = 0;
  double mtp_experts = 0;  ///< the routed experts of its layer
};
ParamCount count_params(const ModelSpec& m);
/// Weight matrices in one MLP: SwiGLU has gate, up and down; GELU up and down.
double mlp_matrices(const ModelSpec& m);

/// Whether layer `i` (0-based) is a mixture-of-experts layer.
bool is_moe_layer(const ModelSpec& m, int i);

enum class KernelKind { kGemm, kAttention, kElementwise };
/// Which passes run a kernel: most run in forward and have a derived backward; FP8's input
/// casts run in forward only, its output-gradient casts in backward only (as they are).
enum class KernelPass { kBoth, kForward, kBackward };

/// One kernel as one GPU runs it. Its shape, where known, sets how well it fills the GPU:
/// a GEMM's output is `rows` x `cols` (reduction depth `depth`), `batch` independent ones
/// (grouped experts); fused attention has `rows` queries per sequence and head, over `batch`
/// sequence-heads. rows = 0: no shape.
struct Kernel {
  KernelKind kind;
  std::string name;
  Flops flops;
  Bytes bytes;  ///< HBM traffic
  double rows = 0, cols = 0, depth = 0, batch = 1;
  double useful = 1.0;  ///< fraction of the FLOPs that are model FLOPs (capacity padding is not)
  bool core_attention = false;  ///< part of softmax(q k^T) v: what selective recompute redoes
  Bytes written{};  ///< element-wise kernels: the part of `bytes` written (the rest is read)
  /// Fused attention: the keys each query's sequence has (its loop over key blocks; 0 = no
  /// shape), whether it is causally masked, and whether this is the backward pass.
  double keys = 0;
  bool causal = false;
  bool backward = false;
  /// A fused norm over each token's values (RMSNorm, LayerNorm): its backward also sums the
  /// weight's gradient over the tokens.
  bool norm = false;
  bool wgrad = false;  ///< a weight-gradient GEMM (its depth the tokens, its output a weight's shape)
  /// A GEMM that stays in bf16 when the layers' run in FP8 (the router, the LM head: Transformer
  /// Engine's FP8 covers the layers' linears, and torchtitan's Float8 leaves out the output).
  bool bf16_only = false;
  KernelPass pass = KernelPass::kBoth;
  // Where a layer's parallel communication sits (layer_forward marks it; the step program reads it):
  bool opens_block = false;   ///< a norm whose output feeds a block (SP gathers the sequence after it)
  bool closes_block = false;  ///< a residual add: the block's output is reduced over TP before it
  bool expert_in = false;     ///< the first kernel after the MoE dispatch (tokens are dispatched before it)
  bool expert_out = false;    ///< the last kernel before the MoE combine (tokens are combined after it)
  /// SMs a communication kernel beside it takes (TP overlap): it runs on the rest.
  int sms_taken = 0;
  /// It gives up `sms_taken` only while a collective of its rank runs on a compute or side
  /// stream (an overlapped pair's all-to-alls), not for its whole length (TP overlap's chunks).
  bool sms_while_comm = false;
  /// The module selective recompute names it by (RecomputeModule bits; 0 = none).
  unsigned module = 0;
  /// The share of it torchtitan's per-op checkpointing (Recompute::kOp) reruns before the
  /// backward: its save list keeps attention's output and every other matmul's (the 1st, 3rd,
  /// ... of a block's forward in call order: q, v, then the MLP's first and last under SwiGLU),
  /// so a fused QKV GEMM reruns its K part and a fused gate/up GEMM its up half.
  double op_rerun = 1.0;
};

/// The backward GEMMs of a forward GEMM (rows x depth by depth x cols): the data gradient
/// (rows x cols by cols x depth) and the weight gradient (depth x rows by rows x cols), each
/// with the forward's FLOPs and bytes.
Kernel data_gradient(const Kernel& forward);
Kernel weight_gradient(const Kernel& forward);

/// Fused attention's backward (FlashAttention's): the same shape; its FLOPs twice the
/// forward's by the model-FLOP convention (the roofline charges the scores' recompute on top,
/// GpuModel), its HBM traffic the inputs, output and their gradients, twice the forward's.
Kernel attention_backward(const Kernel& forward);

/// The backward of an element-wise kernel that reads R bytes and writes W: it reads the saved
/// inputs and the output's gradient and writes the inputs' gradients, 2R + W bytes.
Kernel elementwise_backward(const Kernel& forward);

/// How one layer is sharded and batched on one GPU.
struct Shard {
  long long micro_batch = 1;
  long long seq_len = 0;
  int tp = 1, cp = 1, ep = 1;
  int etp = 0;  ///< expert tensor parallelism; 0 = tp
  bool sp = false;
  double bytes_per_value = 2.0;  ///< activations and weights, as stored and as element-wise kernels move them
  /// GEMM inputs (weights and activations) as the GEMMs read them and as backward keeps the
  /// activation ones: 1 with fp8 (Transformer Engine's recipe), else bytes_per_value.
  double gemm_input_bytes = 2.0;
  double capacity_factor = 1.0;
  /// MoE tokens dispatched as DeepEP does (parallel.moe_token_dispatcher: deepep, Megatron-Core's
  /// flex dispatcher): permuted into expert order after the dispatch. Else Megatron-Core's
  /// all-to-all dispatcher: permuted before it, the received chunks sorted by expert after it.
  bool deepep = false;
  /// Fused attention (FlashAttention): the scores never reach HBM. Unfused (Megatron-LM before
  /// 2023): two batched GEMMs over the whole s x s square (masking happens in the softmax)
  /// with the scores, probabilities and dropout through HBM in between.
  bool flash_attention = true;
  bool dropout = false;  ///< attention dropout (GPT): one more pass over the s x s probabilities
  /// Eager PyTorch (transformers' Llama modules, as torchtitan without torch.compile runs them):
  /// RMSNorm, RoPE and SwiGLU op by op with fp32 casts, residual adds apart, separate Q/K/V and
  /// gate/up GEMMs, logits cast to fp32 before the loss. Else the fused kernels of Megatron-LM and
  /// Transformer Engine.
  bool eager = false;
};

/// The presets' model families: Llama, Mixtral and DeepSeek pair SwiGLU with RMSNorm and rotary
/// position embeddings; GPT pairs GELU with LayerNorm (one kernel even in eager PyTorch) and
/// learned positions.
bool has_rms_norm(const ModelSpec& m);
bool has_rotary(const ModelSpec& m);

/// The forward kernels of layer `i` on one GPU.
std::vector<Kernel> layer_forward(const ModelSpec& m, int i, const Shard& s);
/// The forward kernels of the LM head and loss (last stage) on one GPU.
std::vector<Kernel> head_forward(const ModelSpec& m, const Shard& s);
/// One multi-token-prediction module's kernels before its layer (layer_forward(m, m.layers, s))
/// and the shared head (head_forward): the norms of the previous depth's hidden state and of
/// the next token's embedding, and the projection of the two, concatenated, back to h.
std::vector<Kernel> mtp_forward(const ModelSpec& m, const Shard& s);

/// Forward FLOPs of the whole model for one sequence of `seq_len` tokens (model FLOPs: no
/// recompute, no multi-token prediction), summed over every GPU that shares it.
Flops model_forward_flops_per_sequence(const ModelSpec& m, long long seq_len);

/// kOp: torchtitan's per-op selective activation checkpointing (selective_ac_option "op"),
/// which saves the outputs of its save list (matmuls, attention, TP reduce-scatters) and
/// reruns the rest (Kernel::op_rerun).
enum class Recompute { kNone, kSelective, kFull, kOp };
Recompute parse_recompute(const std::string& s);

/// What selective recompute redoes in backward, as Megatron-Core's --recompute-modules names
/// it (bits): the attention core (softmax(q k^T) v), the block-opening norms, MLA's query and
/// key/value up-projections, the routed experts' activation function. Megatron's default, and
/// `recompute: selective` alone, is the attention core.
enum RecomputeModule : unsigned { kCoreAttn = 1, kLayerNorm = 2, kMlaUpProj = 4, kMoeAct = 8 };
struct RecomputeModuleName {
  RecomputeModule bit;
  const char* name;
};
/// Each module's name, as Megatron-Core spells it: the one home of the names.
inline constexpr std::array<RecomputeModuleName, 4> kRecomputeModules{
    {{kCoreAttn, "core_attn"}, {kLayerNorm, "layernorm"}, {kMlaUpProj, "mla_up_proj"}, {kMoeAct, "moe_act"}}};
/// A list of module names (core_attn, layernorm, mla_up_proj, moe_act) as bits; an Error
/// naming `path[i]` for an unknown or repeated one, `path` for an empty list.
unsigned parse_recompute_modules(const std::vector<std::string>& names, const std::string& path);
/// The modules `bits` names, comma-separated in kRecomputeModules' order.
std::string recompute_modules_text(unsigned bits);

/// Activation bytes layer `i` keeps for backward, per micro-batch, on one GPU (Korthikanti
/// Table 2 with their 2-byte activations and 1-byte dropout masks; `dropout` as GPT has it).
/// MoE layers keep the dispatched tokens (the routed experts' input) and the shared experts'
/// inner activations besides. Under selective recompute, what `modules` recompute is not kept:
/// the attention core, the norms' outputs (their inputs are kept), MLA's Q, K and V (its latents
/// are kept), the routed experts' activation output (its input is kept).
Bytes layer_activation_bytes(const ModelSpec& m, int i, const Shard& s, Recompute r, bool dropout,
                             unsigned modules = kCoreAttn);

/// Dropout is part of the published GPT architectures (Megatron GPT); Llama and Mixtral have none.
bool has_dropout(const ModelSpec& m);

}  // namespace wallsim::parallelism
