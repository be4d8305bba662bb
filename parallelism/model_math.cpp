#include "parallelism/model_math.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/text.hpp"

namespace wallsim::parallelism {
namespace {

bool is_mla(const ModelSpec& m) { return m.kv_lora_rank > 0; }

/// Parameters of one attention block's projections.
double attention_params(const ModelSpec& m) {
  const double h = static_cast<double>(m.hidden), a = m.heads;
  if (is_mla(m)) {
    const double qk = static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim);
    const double q = m.q_lora_rank > 0
                         ? h * static_cast<double>(m.q_lora_rank) + static_cast<double>(m.q_lora_rank) +
                               static_cast<double>(m.q_lora_rank) * a * qk
                         : h * a * qk;
    const double kv = h * static_cast<double>(m.kv_lora_rank + m.qk_rope_head_dim) +
                      static_cast<double>(m.kv_lora_rank) +
                      static_cast<double>(m.kv_lora_rank) * a *
                          static_cast<double>(m.qk_nope_head_dim + m.v_head_dim);
    const double o = a * static_cast<double>(m.v_head_dim) * h;
    return q + kv + o;
  }
  const double d = static_cast<double>(m.head_dim), g = m.kv_heads;
  return h * (a + 2.0 * g) * d + a * d * h;
}

double attention_core_flops_per_token(const ModelSpec& m, double context) {
  // Scores (q.k) and values (p.v), causal: each query sees (context + 1) / 2 keys on average.
  const double a = m.heads;
  const double qk = is_mla(m) ? static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim)
                              : static_cast<double>(m.head_dim);
  const double v = is_mla(m) ? static_cast<double>(m.v_head_dim) : static_cast<double>(m.head_dim);
  return 2.0 * a * (qk + v) * (context + 1.0) / 2.0;
}

}  // namespace

Kernel data_gradient(const Kernel& f) {
  Kernel k = f;
  k.name += " (data gradient)";
  k.cols = f.depth;
  k.depth = f.cols;
  return k;
}

Kernel weight_gradient(const Kernel& f) {
  Kernel k = f;
  k.name += " (weight gradient)";
  k.wgrad = !f.core_attention;  // attention's batched GEMMs have two activation operands
  k.rows = f.depth;
  k.cols = f.cols;
  k.depth = f.rows;
  return k;
}

Kernel attention_backward(const Kernel& f) {
  Kernel k = f;
  k.name += " (backward)";
  k.flops = f.flops * 2.0;
  k.bytes = f.bytes * 2.0;
  k.backward = true;
  return k;
}

Kernel elementwise_backward(const Kernel& f) {
  Kernel k = f;
  k.name += " (backward)";
  k.backward = true;
  const double w = f.written.value(), r = f.bytes.value() - w;
  k.bytes = Bytes::of(2.0 * r + w);
  k.written = Bytes::of(r);
  return k;
}

bool is_moe_layer(const ModelSpec& m, int i) { return m.experts > 0 && i >= m.dense_layers; }

bool has_dropout(const ModelSpec& m) { return m.activation == "gelu"; }
bool has_rms_norm(const ModelSpec& m) { return m.activation == "swiglu"; }
bool has_rotary(const ModelSpec& m) { return m.activation == "swiglu"; }

double mlp_matrices(const ModelSpec& m) { return m.activation == "swiglu" ? 3.0 : 2.0; }

ParamCount count_params(const ModelSpec& m) {
  ParamCount p;
  const double h = static_cast<double>(m.hidden), v = static_cast<double>(m.vocab);
  p.embedding = v * h;
  p.lm_head = m.tied_embeddings ? 0.0 : v * h;
  const double norms = 2.0 * h;
  const double attn = attention_params(m);
  p.dense_layer = attn + mlp_matrices(m) * h * static_cast<double>(m.ffn) + norms;
  const double expert = mlp_matrices(m) * h * static_cast<double>(m.moe_ffn);
  p.moe_experts = m.experts * expert;
  p.moe_layer = attn + (m.experts + m.shared_experts) * expert + h * m.experts + norms;
  const int moe_layers = m.experts > 0 ? m.layers - m.dense_layers : 0;
  const int dense_layers = m.layers - moe_layers;
  p.total = p.embedding + p.lm_head + h + dense_layers * p.dense_layer + moe_layers * p.moe_layer;
  p.active = p.total - moe_layers * (m.experts - m.top_k) * expert;
  if (m.mtp_layers > 0) {
    // DeepSeek-V3 sec. 2.2: a layer, the projection of [norm(h); norm(embedding)] from 2h to
    // h, and the two norms, plus the module's own final norm before the shared head.
    const bool moe = is_moe_layer(m, m.layers);
    p.mtp = (moe ? p.moe_layer : p.dense_layer) + 2.0 * h * h + 3.0 * h;
    p.mtp_experts = moe ? p.moe_experts : 0.0;
  }
  return p;
}

Recompute parse_recompute(const std::string& s) {
  if (s == "none") return Recompute::kNone;
  if (s == "selective") return Recompute::kSelective;
  if (s == "full") return Recompute::kFull;
  if (s == "op") return Recompute::kOp;
  throw Error("parallel.recompute", quote_value(s) + " is not one of none, selective, full, op");
}

unsigned parse_recompute_modules(const std::vector<std::string>& names, const std::string& path) {
  unsigned bits = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    const auto* found = std::find_if(kRecomputeModules.begin(), kRecomputeModules.end(),
                                     [&](const auto& e) { return names[i] == e.name; });
    if (found == kRecomputeModules.end()) {
      std::string all;
      for (const auto& e : kRecomputeModules) all += std::string(all.empty() ? "" : ", ") + e.name;
      throw Error(at, quote_value(names[i]) + " is not one of " + all);
    }
    const unsigned b = found->bit;
    if ((bits & b) != 0) throw Error(at, quote_value(names[i]) + " is named twice");
    bits |= b;
  }
  if (bits == 0) throw Error(path, "names no module; give a list such as [core_attn, layernorm]");
  return bits;
}

std::string recompute_modules_text(unsigned bits) {
  std::string out;
  for (const auto& e : kRecomputeModules) {
    if ((bits & e.bit) != 0) out += std::string(out.empty() ? "" : ", ") + e.name;
  }
  return out;
}

namespace {
/// An element-wise kernel reading and writing these many bytes (FLOPs: one per value read, at w
/// bytes a value; element-wise kernels are memory-bound).
Kernel elementwise_kernel(const std::string& name, double bytes_read, double bytes_written, double w) {
  Kernel e{KernelKind::kElementwise, name, Flops::of(bytes_read / w), Bytes::of(bytes_read + bytes_written)};
  e.written = Bytes::of(bytes_written);
  return e;
}

/// A norm over `values` activations (w bytes each) of `rows` tokens. Fused: one pass. Eager
/// RMSNorm, as transformers' LlamaRMSNorm runs it: x.to(fp32), pow(2), mean(-1), + eps, rsqrt,
/// x * rsqrt, .to(bf16), weight * x: eight kernels, the per-token ones tiny.
void norm_kernels(std::vector<Kernel>& k, const ModelSpec& m, const Shard& s, const std::string& name, double values,
                  double rows, double extra_read = 0.0) {
  const double w = s.bytes_per_value, f32 = 4.0;
  if (!s.eager || !has_rms_norm(m)) {
    k.push_back(elementwise_kernel(name, w * (values + extra_read), w * values, w));
    k.back().norm = true;
    return;
  }
  k.push_back(elementwise_kernel(name + ": to fp32", w * values, f32 * values, w));
  k.push_back(elementwise_kernel(name + ": pow", f32 * values, f32 * values, w));
  k.push_back(elementwise_kernel(name + ": mean", f32 * values, f32 * rows, w));
  k.push_back(elementwise_kernel(name + ": add eps", f32 * rows, f32 * rows, w));
  k.push_back(elementwise_kernel(name + ": rsqrt", f32 * rows, f32 * rows, w));
  k.push_back(elementwise_kernel(name + ": scale", f32 * (values + rows), f32 * values, w));
  k.push_back(elementwise_kernel(name + ": to bf16", f32 * values, w * values, w));
  k.push_back(elementwise_kernel(name + ": weight", w * values, w * values, w));
}

/// Rotary position embeddings on `values` query or key activations. Fused (Megatron-LM's
/// apply_rope_fusion): one pass. Eager, as transformers' apply_rotary_pos_emb: x * cos, the
/// rotated half (-x2 and a cat of both halves), * sin, and the sum: five kernels.
void rotary_kernels(std::vector<Kernel>& k, const Shard& s, const std::string& name, double values) {
  const double w = s.bytes_per_value;
  if (!s.eager) {
    k.push_back(elementwise_kernel(name, w * values, w * values, w));
    return;
  }
  k.push_back(elementwise_kernel(name + ": x cos", w * values, w * values, w));
  k.push_back(elementwise_kernel(name + ": negate half", w * values / 2.0, w * values / 2.0, w));
  k.push_back(elementwise_kernel(name + ": cat", w * values, w * values, w));
  k.push_back(elementwise_kernel(name + ": x sin", w * values, w * values, w));
  k.push_back(elementwise_kernel(name + ": add", 2.0 * w * values, w * values, w));
}
}  // namespace

std::vector<Kernel> layer_forward(const ModelSpec& m, int i, const Shard& s) {
  const double b = static_cast<double>(s.micro_batch);
  const double seq = static_cast<double>(s.seq_len);
  const double tokens = b * seq / s.cp;  // tokens of the micro-batch on this GPU
  const double tp = s.tp, h = static_cast<double>(m.hidden), w = s.bytes_per_value;
  const double norm_tokens = s.sp ? tokens / tp : tokens;  // SP shards norms and residuals
  std::vector<Kernel> k;
  // FP8 (Transformer Engine's recipe): each linear layer's input is cast to FP8 in two layouts
  // (row-wise for its forward, column-wise for its weight gradient) before it, unless a norm
  // wrote it so (TE's LayerNormLinear); in backward its output gradient is cast the same way
  // before its two gradient GEMMs. Each cast reads the bf16 values and writes two FP8 copies.
  const bool fp8 = s.gemm_input_bytes < w;
  auto gemm = [&](const std::string& name, double rows, double in, double out, double groups = 1.0,
                  double useful = 1.0, bool input_from_norm = false) {
    // rows x in times in x out; reads weights and input, writes output. `groups` GEMMs of
    // rows / groups each (experts), run as one grouped kernel.
    if (fp8 && !input_from_norm) {
      k.push_back(elementwise_kernel("fp8 cast: " + name + " input", w * rows * in, 2.0 * s.gemm_input_bytes * rows * in, w));
      k.back().pass = KernelPass::kForward;
    }
    k.push_back({KernelKind::kGemm, name, Flops::of(2.0 * rows * in * out),
                 Bytes::of(s.gemm_input_bytes * (groups * in * out + rows * in) + w * rows * out),
                 rows / groups, out, in, groups, useful});
    if (fp8) {
      k.push_back(elementwise_kernel("fp8 cast: " + name + " output gradient", w * rows * out,
                                     2.0 * s.gemm_input_bytes * rows * out, w));
      k.back().pass = KernelPass::kBackward;
    }
  };
  // The router stays in bf16 (its scores pick the experts).
  auto router = [&](double rows, double in, double out) {
    k.push_back({KernelKind::kGemm, "router", Flops::of(2.0 * rows * in * out), Bytes::of(w * (in * out + rows * in + rows * out)),
                 rows, out, in, 1.0, 1.0});
    k.back().bf16_only = true;
  };
  // Fused attention runs one thread block per query block of each (sequence, head).
  const double queries = seq / s.cp, sequence_heads = b * m.heads / tp;
  auto elementwise = [&](const char* name, double values_read, double values_written) {
    k.push_back(elementwise_kernel(name, w * values_read, w * values_written, w));
  };
  // Names the last GEMM pushed (not an FP8 cast after it) as part of a recompute module.
  auto mark_last_gemm = [&](unsigned module) {
    for (auto x = k.rbegin(); x != k.rend(); ++x) {
      if (x->kind == KernelKind::kGemm) {
        x->module = module;
        return;
      }
    }
  };
  // What per-op checkpointing reruns of the last GEMM pushed (Kernel::op_rerun).
  auto rerun_last_gemm = [&](double share) {
    for (auto x = k.rbegin(); x != k.rend(); ++x) {
      if (x->kind == KernelKind::kGemm) {
        x->op_rerun = share;
        return;
      }
    }
  };
  // Names every kernel pushed since `first` as part of a recompute module.
  auto mark_since = [&](std::size_t first, unsigned module) {
    for (std::size_t x = first; x < k.size(); ++x) k[x].module = module;
  };
  const std::size_t norm_first = k.size();
  norm_kernels(k, m, s, "input norm", norm_tokens * h, norm_tokens);
  mark_since(norm_first, kLayerNorm);
  k.back().opens_block = true;
  const double a = m.heads / tp;
  if (is_mla(m)) {
    const double qk = static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim);
    const double vd = static_cast<double>(m.v_head_dim);
    if (m.q_lora_rank > 0) {
      gemm("q down-projection", tokens, h, static_cast<double>(m.q_lora_rank), 1.0, 1.0, true);
      gemm("q up-projection", tokens, static_cast<double>(m.q_lora_rank), a * qk);
      mark_last_gemm(kMlaUpProj);
    } else {
      gemm("q projection", tokens, h, a * qk, 1.0, 1.0, true);
    }
    gemm("kv down-projection", tokens, h, static_cast<double>(m.kv_lora_rank + m.qk_rope_head_dim), 1.0, 1.0, true);
    gemm("kv up-projection", tokens, static_cast<double>(m.kv_lora_rank),
         a * static_cast<double>(m.qk_nope_head_dim) + a * vd);
    mark_last_gemm(kMlaUpProj);
    // RoPE on the decoupled rope dimensions: each head's query part and the shared key part
    // (recomputed with the up-projections, as Megatron-Core's qkv_up_proj_and_rope_apply).
    const std::size_t rope = k.size();
    rotary_kernels(k, s, "rotary", tokens * (a + 1.0) * static_cast<double>(m.qk_rope_head_dim));
    mark_since(rope, kMlaUpProj);
    const double flops = tokens * attention_core_flops_per_token(m, seq) / tp;
    k.push_back({KernelKind::kAttention, "attention", Flops::of(flops),
                 Bytes::of(w * tokens * a * (2.0 * qk + 2.0 * vd)), queries, vd, qk, sequence_heads, 1.0, true});
    k.back().keys = seq;
    k.back().causal = true;
    gemm("output projection", tokens, a * vd, h);
  } else {
    const double d = static_cast<double>(m.head_dim), g = m.kv_heads / tp;
    if (s.eager) {
      gemm("q projection", tokens, h, a * d, 1.0, 1.0, true);
      rerun_last_gemm(0.0);  // matmul 1: saved
      gemm("k projection", tokens, h, g * d, 1.0, 1.0, true);
      gemm("v projection", tokens, h, g * d, 1.0, 1.0, true);
      rerun_last_gemm(0.0);  // matmul 3: saved
    } else {
      gemm("qkv projection", tokens, h, (a + 2.0 * g) * d, 1.0, 1.0, true);
      rerun_last_gemm(g / (a + 2.0 * g));  // its K part, matmul 2
    }
    if (has_rotary(m)) {
      rotary_kernels(k, s, "rotary q", tokens * a * d);
      rotary_kernels(k, s, "rotary k", tokens * g * d);
    }
    if (s.flash_attention) {
      const double flops = tokens * attention_core_flops_per_token(m, seq) / tp;
      k.push_back({KernelKind::kAttention, "attention", Flops::of(flops),
                   Bytes::of(w * tokens * d * (2.0 * a + 2.0 * g)), queries, d, d, sequence_heads,
                   1.0, true});
      k.back().keys = seq;  // under CP, each GPU's queries meet every key over the ring
      k.back().causal = true;
      k.back().op_rerun = 0.0;  // its output (and statistics) saved
    } else {
      // Per (sequence, head): scores = q k^T (queries x keys, depth d), the scaled, masked
      // softmax and dropout over the square in HBM, then probabilities x v (depth = keys).
      // Causal: the model FLOPs are the unmasked half, as attention_core_flops_per_token counts.
      const double keys = seq, square = sequence_heads * queries * keys, causal = (keys + 1.0) / (2.0 * keys);
      k.push_back({KernelKind::kGemm, "attention scores", Flops::of(2.0 * square * d),
                   Bytes::of(w * (sequence_heads * (queries + keys) * d + square)), queries, keys, d,
                   sequence_heads, causal, true});
      k.back().bf16_only = true;  // core attention stays out of FP8
      k.push_back({KernelKind::kElementwise, "softmax", Flops::of(square), Bytes::of(2.0 * w * square), 0, 0, 0,
                   1.0, 1.0, true, Bytes::of(w * square)});
      if (s.dropout) {  // writes the output and a 1-byte mask
        k.push_back({KernelKind::kElementwise, "attention dropout", Flops::of(square),
                     Bytes::of((2.0 * w + 1.0) * square), 0, 0, 0, 1.0, 1.0, true, Bytes::of((w + 1.0) * square)});
      }
      k.push_back({KernelKind::kGemm, "attention values", Flops::of(2.0 * square * d),
                   Bytes::of(w * (square + sequence_heads * keys * d + sequence_heads * queries * d)), queries, d,
                   keys, sequence_heads, causal, true});
      k.back().bf16_only = true;
    }
    gemm("output projection", tokens, a * d, h);
  }
  if (s.eager) {
    // The residual add apart, then the norm (op by op for RMSNorm).
    elementwise("residual", 2.0 * norm_tokens * h, norm_tokens * h);
    k.back().closes_block = true;
    const std::size_t first = k.size();
    norm_kernels(k, m, s, "post-attention norm", norm_tokens * h, norm_tokens);
    mark_since(first, kLayerNorm);
  } else {
    norm_kernels(k, m, s, "residual + post-attention norm", norm_tokens * h, norm_tokens, norm_tokens * h);
    k.back().closes_block = true;
    k.back().module = kLayerNorm;
  }
  k.back().opens_block = true;
  // `act_module`: the recompute module the activation belongs to (its kernels, and under FP8
  // the forward cast of its output, the down-projection's input).
  auto mlp = [&](const char* up, const char* gate, const char* down, double rows, double f, double groups = 1.0,
                 double useful = 1.0, bool after_norm = true, unsigned act_module = 0) {
    const std::size_t first = k.size();
    std::size_t act = 0;
    // Per-op checkpointing counts the MLP's matmuls on from the attention's 4: SwiGLU's gate
    // (w1, 5th) and down (w2, 7th) saved, its up (w3, 6th) rerun; GELU's up saved, down rerun.
    const bool swiglu = m.activation == "swiglu";
    if (swiglu && s.eager) {
      // transformers' LlamaMLP: down(silu(gate(x)) * up(x)), two GEMMs and two kernels.
      gemm(gate, rows, h, f, groups, useful, after_norm);
      rerun_last_gemm(0.0);
      gemm(up, rows, h, f, groups, useful, after_norm);
      act = k.size();
      elementwise("silu", rows * f, rows * f);
      elementwise("silu x up", 2.0 * rows * f, rows * f);
    } else {
      gemm(up, rows, h, (mlp_matrices(m) - 1.0) * f, groups, useful, after_norm);
      rerun_last_gemm(swiglu ? 0.5 : 0.0);
      act = k.size();
      elementwise(swiglu ? "swiglu" : "gelu", (mlp_matrices(m) - 1.0) * rows * f, rows * f);
    }
    const std::size_t down_first = k.size();
    gemm(down, rows, f, h, groups, useful);
    rerun_last_gemm(swiglu ? 0.0 : 1.0);
    for (std::size_t x = act; x < k.size(); ++x) {
      if (x < down_first || k[x].pass == KernelPass::kForward) k[x].module = act_module;
    }
    return first;
  };
  if (is_moe_layer(m, i)) {
    router(tokens, h, m.experts);
    // Each GPU runs its experts on the tokens routed to them: top_k per token, padded to the
    // capacity factor (padding is hardware work, not model FLOPs), spread evenly over the
    // expert-parallel group, as one grouped GEMM over its experts.
    // With expert TP below tp (MoE folding), each GPU runs etp/tp of the tokens' expert rows
    // through whole-er experts (moe_ffn / etp): the same FLOPs, other shapes.
    const double etp = s.etp > 0 ? s.etp : tp;
    const double routed = tokens * m.top_k * s.capacity_factor * etp / tp;
    // The rows this GPU's tokens send: top_k each, padded to the capacity factor (Megatron-Core
    // pads the permuted rows to the capacity; the unpermute reads them all, padding included).
    const double sent = norm_tokens * m.top_k * s.capacity_factor;
    // The token dispatcher moves the rows in memory on each side of the experts (Megatron-Core's
    // moe_utils permute, sort_chunks_by_idxs and unpermute), each a pass over HBM whose backward
    // moves the same bytes the other way (a scatter, a broadcast):
    //  - DeepEP (the flex dispatcher): the rows dispatched to this GPU are gathered into its
    //    experts' order after the dispatch, and put back in the order received before the
    //    combine (its combine_preprocess), whose kernel sums each token's rows across GPUs;
    //  - all-to-all: each token is copied to its top_k rows in expert order before the dispatch;
    //    after it (and the expert-TP all-gather) the received chunks are sorted by local expert
    //    when the GPU holds more than one, and sorted back before the combine, after which each
    //    token's rows are summed into it, weighted by the router's probabilities (the unpermute).
    // The experts' input is the dispatched tokens, not a norm's output.
    auto moved = [&](const char* name, double from_rows, double to_rows) {
      k.push_back(elementwise_kernel(name, w * from_rows * h, w * to_rows * h, w));
      k.back().pass = KernelPass::kForward;
      k.push_back(elementwise_kernel(std::string(name) + " (backward)", w * to_rows * h, w * from_rows * h, w));
      k.back().pass = KernelPass::kBackward;
      k.back().backward = true;
    };
    const bool sorted = !s.deepep && m.experts > s.ep;  // more than one local expert
    if (!s.deepep) moved("token permute", norm_tokens, sent);
    const std::size_t dispatched = k.size();  // tokens are dispatched before this kernel
    if (s.deepep) moved("token permute", routed, routed);
    if (sorted) moved("sort chunks", routed, routed);
    mlp("expert up/gate", "expert gate", "expert down", routed, static_cast<double>(m.moe_ffn) / etp,
        static_cast<double>(m.experts) / s.ep, 1.0 / s.capacity_factor, false, kMoeAct);
    k[dispatched].expert_in = true;
    if (sorted) moved("sort chunks back", routed, routed);
    if (s.deepep) moved("token unpermute", routed, routed);
    k.back().expert_out = true;  // the tokens are combined after it
    if (!s.deepep) moved("token unpermute", sent, norm_tokens);
    if (m.shared_experts > 0) {
      mlp("shared expert up/gate", "shared expert gate", "shared expert down", tokens,
          static_cast<double>(m.moe_ffn) * m.shared_experts / tp);
    }
  } else {
    mlp("mlp up/gate", "mlp gate", "mlp down", tokens, static_cast<double>(m.ffn) / tp);
  }
  elementwise("residual", 2.0 * norm_tokens * h, norm_tokens * h);
  k.back().closes_block = true;
  return k;
}

std::vector<Kernel> head_forward(const ModelSpec& m, const Shard& s) {
  const double tokens = static_cast<double>(s.micro_batch * s.seq_len) / s.cp;
  const double h = static_cast<double>(m.hidden), v = static_cast<double>(m.vocab) / s.tp;
  const double w = s.bytes_per_value;
  std::vector<Kernel> k;
  norm_kernels(k, m, s, "final norm", tokens * h, tokens);
  k.push_back({KernelKind::kGemm, "lm head", Flops::of(2.0 * tokens * h * v), Bytes::of(w * (h * v + tokens * h + tokens * v)),
               tokens, v, h});
  k.back().bf16_only = true;  // bf16 inputs, no FP8 casts: the output layer stays out of FP8
  // Eager: the bf16 logits cast to fp32 first (transformers' logits.float()).
  if (s.eager) k.push_back(elementwise_kernel("logits to fp32", w * tokens * v, 4.0 * tokens * v, w));
  // The loss reads the fp32 logits and writes fp32 probabilities for the backward.
  k.push_back(elementwise_kernel("cross entropy", 4.0 * tokens * v, 4.0 * tokens * v, w));
  k.back().flops = Flops::of(3.0 * tokens * v);
  return k;
}

std::vector<Kernel> mtp_forward(const ModelSpec& m, const Shard& s) {
  // The plan refuses tensor parallelism with MTP: whole tokens, whole hidden states here.
  const double tokens = static_cast<double>(s.micro_batch * s.seq_len) / s.cp;
  const double h = static_cast<double>(m.hidden), w = s.bytes_per_value;
  std::vector<Kernel> k;
  norm_kernels(k, m, s, "mtp hidden norm", tokens * h, tokens);
  norm_kernels(k, m, s, "mtp embedding norm", tokens * h, tokens);
  k.push_back({KernelKind::kGemm, "mtp projection", Flops::of(2.0 * tokens * 2.0 * h * h),
               Bytes::of(w * (2.0 * h * h + tokens * 2.0 * h + tokens * h)), tokens, h, 2.0 * h});
  return k;
}

Flops model_forward_flops_per_sequence(const ModelSpec& m, long long seq_len) {
  Shard s;
  s.seq_len = seq_len;
  double f = 0.0;
  for (int i = 0; i < m.layers; ++i) {
    for (const auto& k : layer_forward(m, i, s)) {
      if (k.kind != KernelKind::kElementwise) f += k.flops.value() * k.useful;
    }
  }
  for (const auto& k : head_forward(m, s)) {
    if (k.kind != KernelKind::kElementwise) f += k.flops.value();
  }
  // Multi-token prediction is left out, as DeepSeek's 250 GFLOP a token (ISCA 2025, Table 2)
  // and its MFU leave it out: its modules' FLOPs count as hardware FLOPs (HFU).
  return Flops::of(f);
}

Bytes layer_activation_bytes(const ModelSpec& m, int i, const Shard& s, Recompute r, bool dropout, unsigned modules) {
  // Korthikanti et al. Sec. 4.1, per layer, s*b*h units with 2-byte values and 1-byte masks:
  // attention 11sbh + 5as^2b, MLP 19sbh, norms 4sbh (GPT: 34sbh + 5as^2b). Generalised:
  // Q and K/V sized by heads and kv_heads, the MLP by its own inner size and matrices,
  // dropout masks only where the model has dropout. Tensor parallelism shards what lies
  // between the column- and row-parallel GEMMs; sequence parallelism shards the rest.
  const double sb = static_cast<double>(s.micro_batch) * static_cast<double>(s.seq_len) / s.cp;
  const double h = static_cast<double>(m.hidden), t = s.tp;
  const double mask = dropout ? 1.0 : 0.0;
  const double a = m.heads;
  const double qd = is_mla(m) ? static_cast<double>(m.qk_nope_head_dim + m.qk_rope_head_dim) * a
                              : static_cast<double>(m.head_dim) * a;
  const double kvd = is_mla(m) ? qd + static_cast<double>(m.v_head_dim) * a
                               : 2.0 * static_cast<double>(m.head_dim) * m.kv_heads;
  const double vd = is_mla(m) ? static_cast<double>(m.v_head_dim) * a : static_cast<double>(m.head_dim) * a;
  // Replicated across TP ranks unless SP: two norm inputs (4), the QKV and MLP inputs (2 + 2),
  // two dropout masks (1 + 1).
  // With fp8 GEMMs the QKV, output-projection, MLP and down-projection inputs are kept in
  // fp8 (gemm_input_bytes = 1) for the weight gradients.
  const double g = s.gemm_input_bytes;
  const bool selective = r == Recompute::kSelective;
  // The norms' outputs are the QKV and MLP inputs; recomputing the norms keeps only their inputs.
  const double norm_outputs = selective && (modules & kLayerNorm) != 0 ? 0.0 : g * h + g * h;
  const double replicated = sb * (4.0 * h + norm_outputs + 2.0 * mask * h);
  const bool moe = is_moe_layer(m, i);
  const double f = moe ? static_cast<double>(m.moe_ffn) * m.top_k * s.capacity_factor : static_cast<double>(m.ffn);
  // SwiGLU: gate and up outputs (2 bytes each) and the down projection's input; GELU: the up
  // output and the down projection's input (the routed experts' recomputed from the former).
  const double act_out = moe && selective && (modules & kMoeAct) != 0 ? 0.0 : g;
  double mlp_inner = m.activation == "swiglu" ? (2.0 * 2.0 + act_out) * f : (2.0 + act_out) * f;
  if (moe) {
    // The routed experts' input, the dispatched tokens (top_k copies, padded), kept for their
    // first GEMM's weight gradient; and the shared experts' inner activations.
    const double fs = static_cast<double>(m.moe_ffn) * m.shared_experts;
    mlp_inner += g * h * m.top_k * s.capacity_factor + (m.activation == "swiglu" ? (2.0 * 2.0 + g) * fs : (2.0 + g) * fs);
  }
  // MLA keeps its query and key/value latents (the up-projections' inputs); recomputing the
  // up-projections keeps them instead of Q, K and V.
  const double latents = is_mla(m) ? static_cast<double>(m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim) : 0.0;
  const double qkv = is_mla(m) && selective && (modules & kMlaUpProj) != 0 ? 0.0 : 2.0 * qd + 2.0 * kvd;
  // Sharded by TP: Q, K, V (2 bytes each), the output projection's input, the MLP's inner
  // activations (MLA's latents are TP-replicated but small; they are counted with these).
  const double sharded = sb * (qkv + 2.0 * latents * t + g * vd + mlp_inner);
  // The attention core: softmax output (2as^2b), and with dropout its mask and output (3as^2b);
  // a fused (flash) kernel keeps only fp32 softmax statistics per query and head instead.
  const double core = s.flash_attention ? sb * a * 4.0
                                        : sb * static_cast<double>(s.seq_len) * a * (2.0 + 3.0 * mask);
  const double rep_div = s.sp ? t : 1.0;
  if (r == Recompute::kOp) {
    // torchtitan's per-op checkpointing keeps the block's input and the outputs of its save
    // list: q and v (matmuls 1 and 3), attention's output and fp32 statistics, the MLP's
    // first matmul (and under SwiGLU its last, w2: the row-parallel GEMM's whole partial
    // output on each TP rank), and under SP the two reduce-scatters' outputs. (The plan
    // allows it for dense models with fused attention only.)
    const double d = static_cast<double>(m.head_dim), g = m.kv_heads;
    const double mlp_saved = 2.0 * static_cast<double>(m.ffn) / t + (m.activation == "swiglu" ? 2.0 * h : 0.0);
    const double scatters = s.sp && t > 1 ? 2.0 * 2.0 * h / t : 0.0;
    return Bytes::of(sb * (2.0 * h / rep_div + (2.0 * a * d + 2.0 * g * d + 2.0 * a * d + 4.0 * a) / t + mlp_saved + scatters));
  }
  switch (r) {
    case Recompute::kFull: return Bytes::of(2.0 * sb * h / rep_div);
    case Recompute::kSelective:
      return Bytes::of(replicated / rep_div + (sharded + ((modules & kCoreAttn) != 0 ? 0.0 : core)) / t);
    case Recompute::kNone:
    case Recompute::kOp: return Bytes::of(replicated / rep_div + (sharded + core) / t);
  }
  return Bytes::of(0.0);
}

}  // namespace wallsim::parallelism
