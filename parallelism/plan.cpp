#include "parallelism/plan.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/text.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/pipeline.hpp"

namespace wallsim::parallelism {
namespace {

std::string str(long long v) { return std::to_string(v); }

PipeSchedule parse_schedule(const std::string& s, int vpp) {
  if (s == "gpipe") return PipeSchedule::kGpipe;
  if (s == "1f1b") return vpp > 1 ? PipeSchedule::kInterleaved : PipeSchedule::kOneFOneB;
  if (s == "interleaved") return PipeSchedule::kInterleaved;
  if (s == "zero-bubble") return PipeSchedule::kZeroBubble;
  if (s == "zero-bubble-v") return PipeSchedule::kZeroBubbleV;
  if (s == "dualpipe") return PipeSchedule::kDualPipe;
  throw Error("parallel.schedule",
              quote_value(s) + " is not one of gpipe, 1f1b, interleaved, zero-bubble, zero-bubble-v, dualpipe");
}

/// prod_{i < k} (a - i) / (b - i): the chance that k draws without replacement from b items
/// all fall among a given a of them.
double all_among(double a, double b, int k) {
  double q = 1.0;
  for (int i = 0; i < k; ++i) q *= std::max(a - i, 0.0) / (b - i);
  return q;
}

/// The chance that one token's routed experts touch a given scale-up domain of the EP group
/// (the same for every domain: the dispatcher checks they are spread evenly), experts placed
/// on the EP ranks in order (Megatron's). Routing is taken as even over the experts (DeepSeek-V3
/// balances its expert load, sec. 2.1.2); under group-limited routing over the groups, every
/// chosen group receiving at least one of the token's experts (the routing's "at most" as equal).
double domain_touch_chance(const ModelSpec& m, const Plan& plan, const Scenario& sc) {
  const long long dom = sc.cluster.scale_up_domain;
  const auto ep = group_of(plan, Coords{}, GroupKind::kEp);
  // The domains of the EP group, each with its experts, and each router group's domains.
  std::vector<long long> domains;
  for (auto gpu : ep) domains.push_back(static_cast<long long>(gpu) / dom);
  std::sort(domains.begin(), domains.end());
  // The dispatch sends to the same-index rank of each other domain: every domain holds as many
  // of the group's ranks (the sorted list in runs of equal length).
  const auto per_domain = static_cast<std::size_t>(std::upper_bound(domains.begin(), domains.end(), domains.front()) - domains.begin());
  bool even = domains.size() % per_domain == 0;
  for (std::size_t i = 0; even && i < domains.size(); i += per_domain) even = domains[i] == domains[i + per_domain - 1];
  for (std::size_t i = per_domain; even && i < domains.size(); i += per_domain) even = domains[i] != domains[i - 1];
  if (!even) {
    throw Error("parallel.moe_token_dispatcher", "deepep needs the EP group (ep " + std::to_string(plan.ep) +
                                                     ") spread evenly over scale-up domains of " + std::to_string(dom) + " GPUs");
  }
  domains.erase(std::unique(domains.begin(), domains.end()), domains.end());
  const double experts = m.experts, per_rank = experts / plan.ep;
  auto domain_of_expert = [&](long long x) {
    const auto gpu = static_cast<long long>(ep[static_cast<std::size_t>(x / static_cast<long long>(per_rank))]);
    return static_cast<std::size_t>(std::lower_bound(domains.begin(), domains.end(), gpu / dom) - domains.begin());
  };
  const double e0 = experts / static_cast<double>(domains.size());  // experts of a domain, when even
  if (m.router_groups == 0) return 1.0 - all_among(experts - e0, experts, m.top_k);
  const long long per_group = m.experts / m.router_groups;
  bool groups_in_domains = true, domains_in_groups = true;
  std::vector<int> group_domain(static_cast<std::size_t>(m.router_groups)), domain_group(domains.size(), -1);
  for (long long x = 0; x < m.experts; ++x) {
    const auto g = static_cast<std::size_t>(x / per_group);
    const auto d = domain_of_expert(x);
    if (x % per_group == 0) group_domain[g] = static_cast<int>(d);
    groups_in_domains = groups_in_domains && group_domain[g] == static_cast<int>(d);
    if (domain_group[d] < 0) domain_group[d] = static_cast<int>(g);
    domains_in_groups = domains_in_groups && domain_group[d] == static_cast<int>(g);
  }
  const double groups = m.router_groups;
  if (groups_in_domains) {
    // The token's groups fall in this domain's groups (groups / domains of them) or not.
    return 1.0 - all_among(groups - groups / static_cast<double>(domains.size()), groups, m.router_group_topk);
  }
  if (domains_in_groups) {
    // The domain's group is chosen, then its experts hold one of the token's, drawn from the
    // chosen groups' experts.
    const double chosen = m.router_group_topk * static_cast<double>(per_group);
    return m.router_group_topk / groups * (1.0 - all_among(chosen - e0, chosen, m.top_k));
  }
  throw Error("model.router_groups", std::to_string(m.router_groups) + " router groups straddle the " +
                                         std::to_string(domains.size()) + " scale-up domains of the EP group (ep " +
                                         std::to_string(plan.ep) + "): deepep needs each group inside one domain, or each "
                                         "domain inside one group");
}

}  // namespace

std::string to_string(PipeSchedule s) {
  switch (s) {
    case PipeSchedule::kGpipe: return "gpipe";
    case PipeSchedule::kOneFOneB: return "1f1b";
    case PipeSchedule::kInterleaved: return "interleaved";
    case PipeSchedule::kZeroBubble: return "zero-bubble";
    case PipeSchedule::kZeroBubbleV: return "zero-bubble-v";
    case PipeSchedule::kDualPipe: return "dualpipe";
  }
  return "?";
}

std::string Plan::event_engine_only() const {
  if (dual() || schedule == PipeSchedule::kZeroBubbleV) return "parallel.schedule";
  if (grad_reduce_per_step) return "parallel.grad_reduce";
  if (fp8_gather) return "parallel.fsdp_float8_all_gather";
  if (prefetch_layers != 1) return "parallel.prefetch_layers";
  if (overlap_ep) return "parallel.overlap_moe_expert_parallel_comm";
  if (!reshard_after_forward) return "parallel.reshard_after_forward";
  if (hybrid()) return "parallel.dp_shard";
  if (dispatch_bytes != 2.0) return "training.moe_dispatch";
  if (deepep()) return "parallel.moe_token_dispatcher";
  if (mtp) return "model.mtp_layers";
  if (recompute == Recompute::kSelective && recompute_modules != kCoreAttn) return "parallel.recompute_modules";
  if (recompute == Recompute::kOp) return "parallel.recompute";
  return "";
}

int Plan::first_layer(int chunk, int stage) const {
  int first = 0;
  for (int i = 0; i < chunk * pp + stage; ++i) first += chunk_layers[i];
  return first;
}

std::vector<int> spread_layers(int layers, int parts) {
  std::vector<int> v(parts, layers / parts);
  // The extra layers go to the stages nearest the middle: the first and last stages, which
  // also hold the embedding and the head, stay lighter (Llama 3: 126 layers on 16 stages).
  std::vector<int> by_centre(parts);
  std::iota(by_centre.begin(), by_centre.end(), 0);
  const double centre = (parts - 1) / 2.0;
  std::stable_sort(by_centre.begin(), by_centre.end(), [&](int a, int b) {
    return std::abs(a - centre) < std::abs(b - centre);
  });
  for (int i = 0; i < layers % parts; ++i) ++v[by_centre[i]];
  return v;
}

Plan make_plan(const Scenario& sc) {
  if (!sc.model) throw Error("model", "missing: run needs a model");
  if (!sc.training) throw Error("training", "missing: run needs training.global_batch");
  const ModelSpec& m = *sc.model;
  const TrainingSpec& t = *sc.training;
  const ParallelSpec p = sc.parallel.value_or(ParallelSpec{});
  const long long gpus = sc.cluster.gpus();
  Plan plan;
  plan.tp = p.tp;
  plan.pp = p.pp;
  plan.cp = p.cp;
  plan.ep = p.ep;
  plan.etp = p.etp == 0 ? p.tp : p.etp;
  plan.vpp = p.vpp;
  plan.sp = p.sp && p.tp > 1;
  plan.zero = p.zero;
  plan.recompute = parse_recompute(p.recompute);
  if (!p.recompute_modules.empty()) {
    plan.recompute_modules = parse_recompute_modules(p.recompute_modules, "parallel.recompute_modules");
    if ((plan.recompute_modules & kMlaUpProj) != 0 && m.kv_lora_rank == 0) {
      throw Error("parallel.recompute_modules", "mla_up_proj needs a model with multi-head latent attention (kv_lora_rank)");
    }
    if ((plan.recompute_modules & kMoeAct) != 0 && m.experts == 0) {
      throw Error("parallel.recompute_modules", "moe_act needs a model with routed experts (model.experts)");
    }
    if (sc.cluster.gpu.cores > 0 && plan.recompute_modules != kCoreAttn) {
      throw Error("parallel.recompute_modules", "applies to GPU clusters; the wafer step recomputes the attention core only");
    }
  }
  plan.schedule = parse_schedule(p.schedule, p.vpp);
  if (plan.recompute == Recompute::kOp) {
    // Per-op checkpointing's save list is written for torchtitan's Llama blocks.
    const char* key = "parallel.recompute";
    if (m.experts > 0 || m.kv_lora_rank > 0) {
      throw Error(key, "op (torchtitan's per-op checkpointing) is built for dense models with plain attention; this model's experts or latent attention are not");
    }
    if (!t.flash_attention) throw Error(key, "op keeps fused attention's output: it needs training.flash_attention");
    if (sc.cluster.gpu.cores > 0) throw Error(key, "op applies to GPU clusters; the wafer step recomputes whole layers or the attention core");
  }
  const bool v_shape = plan.schedule == PipeSchedule::kZeroBubbleV;
  if (v_shape) {
    // ZB-V runs two chunks a rank, in a V (PyTorch's ScheduleZBVZeroBubble needs exactly two).
    if (p.vpp > 2) throw Error("parallel.vpp", "zero-bubble-v runs two chunks a rank (a V), so vpp is 2, not " + str(p.vpp));
    if (p.pp < 2) throw Error("parallel.pp", "zero-bubble-v needs pp of at least 2");
    plan.vpp = 2;
  }
  plan.micro_batch = t.micro_batch;
  plan.global_batch = t.global_batch;
  plan.dropout = t.dropout.value_or(has_dropout(m));
  // Mixed precision (ZeRO, Rajbhandari et al. SC'20, sec. 3.1: K = 12 for Adam): an fp32 (or,
  // with a precision-aware optimizer as Megatron-Core's --main-params-dtype and
  // --exp-avg-dtype, bf16) master copy and moments of the same width.
  const double master = t.master_weights == "fp32" ? 4.0 : 2.0, state = t.optimizer_states == "fp32" ? 4.0 : 2.0;
  const double moments = t.optimizer == "sgd" ? 1.0 : 2.0;
  plan.optimizer = t.optimizer;
  plan.optimizer_bytes = master + moments * state;
  plan.optimizer_flops = t.optimizer == "sgd" ? 4.0 : t.optimizer == "lamb" ? 13.0 : 10.0;
  plan.seq_len = t.seq_len > 0 ? t.seq_len : m.seq_len;
  plan.precision = t.precision;
  plan.fp8_blockwise = t.fp8_recipe == "blockwise";
  plan.capacity_factor = t.capacity_factor;
  plan.dispatch_bytes = t.moe_dispatch == "fp8" ? 1.0 + 4.0 / 128.0 : 2.0;
  plan.flash_attention = t.flash_attention;
  plan.eager = t.kernels == "eager";
  plan.overlap_grad_reduce = p.overlap_grad_reduce;
  plan.overlap_param_gather = p.overlap_param_gather;
  // Megatron-LM asserts --overlap-param-gather needs the distributed optimizer and
  // --overlap-grad-reduce.
  if (plan.overlap_param_gather && !(p.zero == 1 || p.zero == 2)) {
    throw Error("parallel.overlap_param_gather", p.zero == 0 ? "needs the distributed optimizer (parallel.zero 1 or 2): without it there is no parameter all-gather"
                                                             : "applies to ZeRO 1 and 2: ZeRO-3 gathers each layer's weights before its forward anyway");
  }
  if (plan.overlap_param_gather && !plan.overlap_grad_reduce) {
    throw Error("parallel.overlap_param_gather", "needs parallel.overlap_grad_reduce, as Megatron-LM's does");
  }
  // Megatron-LM overlaps pipeline p2p only under the interleaved schedule (it turns the flag off
  // for the others, and the zero-bubble runtime asserts it off); DualPipe always overlaps, and
  // PyTorch's pipelining runtime (ZB-V) posts its sends and waits for them later.
  {
    const bool overlapping = plan.schedule == PipeSchedule::kInterleaved || plan.schedule == PipeSchedule::kDualPipe ||
                             plan.schedule == PipeSchedule::kZeroBubbleV;
    plan.overlap_p2p_comm = p.overlap_p2p_comm.value_or(overlapping);
    if (p.overlap_p2p_comm && *p.overlap_p2p_comm && !overlapping) {
      throw Error("parallel.overlap_p2p_comm", "Megatron-LM overlaps pipeline sends only under the interleaved schedule, not " +
                                                   to_string(plan.schedule));
    }
    if (p.overlap_p2p_comm && !*p.overlap_p2p_comm && plan.dual()) {
      throw Error("parallel.overlap_p2p_comm", "DualPipe's runtime always overlaps its sends with compute");
    }
  }
  plan.tp_comm_overlap = p.tp_comm_overlap;
  if (p.overlap_moe_expert_parallel_comm) {
    // Megatron-Core's checks (transformer_config.py, core_v0.14.0).
    const char* key = "parallel.overlap_moe_expert_parallel_comm";
    if (p.ep < 2) throw Error(key, "overlaps expert parallelism's all-to-alls: it needs ep above 1");
    if (plan.schedule != PipeSchedule::kOneFOneB && plan.schedule != PipeSchedule::kInterleaved) {
      throw Error(key, "pairs 1F1B's forwards and backwards: it needs schedule 1f1b (without a pipeline) or interleaved, not " +
                           to_string(plan.schedule));
    }
    if (p.pp > 1 && plan.schedule != PipeSchedule::kInterleaved) {
      throw Error(key, "with pp above 1 needs the interleaved schedule (Megatron-Core: virtual_pipeline_model_parallel_size must be specified)");
    }
    if (plan.recompute == Recompute::kFull) throw Error(key, "does not run with full recompute (Megatron-Core asserts it off)");
    if (m.mtp_layers > 1) throw Error(key, "runs with at most one multi-token-prediction layer, as Megatron-Core");
    if (sc.cluster.gpu.cores > 0) throw Error(key, "applies to GPU clusters, not to the wafer step");
    plan.overlap_ep = true;
  }
  // Megatron-LM refuses --tp-comm-overlap without --sequence-parallel (its userbuffers
  // overlap SP's all-gathers and reduce-scatters).
  if (plan.tp_comm_overlap && !plan.sp) {
    throw Error("parallel.tp_comm_overlap", p.tp > 1 ? "needs sequence parallelism (parallel.sp: true), as Megatron-LM's does"
                                                    : "needs tensor parallelism (tp above 1): there is no TP communication to overlap");
  }
  plan.wafer_pipelined = p.wafer_mode == "pipelined";
  if (t.allocator_reserve && sc.cluster.gpu.cores > 0) {
    throw Error("training.allocator_reserve", "applies to GPU clusters' caching allocator, not to the wafer");
  }
  if (plan.seq_len <= 0) throw Error("training.seq_len", "missing, and the model gives none");
  if (plan.fp8_blockwise && !plan.fp8()) {
    throw Error("training.fp8_recipe", "blockwise scales FP8 GEMMs: it needs training.precision: fp8 (or training.fp8_recipe: tensorwise)");
  }
  if (plan.fp8_blockwise && sc.cluster.gpu.cores > 0) {
    throw Error("training.fp8_recipe", "blockwise: the wafer's model has no FP8 recipes; leave it out on a wafer");
  }
  if (plan.fp8() && sc.cluster.gpu.fp8_dense.value() <= 0.0 && sc.cluster.gpu.cores == 0) {
    throw Error("training.precision", "fp8 needs FP8 tensor cores, and " + sc.cluster.gpu.name +
                                          " has none (no fp8_dense)");
  }

  // Degrees are at most kMaxGpus each, so their products are checked, not trusted.
  const long long tpppcp = limits::checked_mul(limits::checked_mul(p.tp, p.pp, limits::kMaxGpus, "parallel.pp", "tp·pp"),
                                               p.cp, limits::kMaxGpus, "parallel.cp", "tp·pp·cp");
  if (gpus % tpppcp != 0) {
    throw Error("parallel.tp", "tp·pp·cp = " + str(tpppcp) + " does not divide cluster.gpus " + str(gpus));
  }
  plan.dp = p.dp > 0 ? p.dp : static_cast<int>(gpus / tpppcp);
  if (plan.gpus() != gpus) {
    throw Error("parallel.dp", "tp·pp·dp·cp = " + str(plan.gpus()) + " but the cluster has " + str(gpus) + " GPUs");
  }
  if (m.heads % p.tp != 0) {
    throw Error("parallel.tp", str(p.tp) + " does not divide model.heads " + str(m.heads));
  }
  if (m.kv_lora_rank == 0 && m.kv_heads % p.tp != 0) {
    throw Error("parallel.tp", str(p.tp) + " does not divide model.kv_heads " + str(m.kv_heads) +
                                   " (Megatron splits query groups across TP)");
  }
  if (p.ep > 1) {
    if (m.experts == 0) throw Error("parallel.ep", str(p.ep) + " needs a mixture-of-experts model");
    if (m.experts % p.ep != 0) {
      throw Error("parallel.ep", str(p.ep) + " does not divide model.experts " + str(m.experts));
    }
  }
  if (p.tp % plan.etp != 0) throw Error("parallel.etp", str(plan.etp) + " does not divide tp " + str(p.tp));
  limits::checked_mul(p.ep, plan.etp, limits::kMaxGpus, "parallel.ep", "ep·etp");
  const long long folded = static_cast<long long>(p.tp) * p.cp * plan.dp;
  if (folded % plan.expert_shards() != 0) {
    throw Error("parallel.ep", "ep·etp = " + str(plan.expert_shards()) + " does not divide tp·cp·dp = " + str(folded) +
                                   " (expert layers fold the same ranks as the attention)");
  }
  plan.reshard_after_forward = p.reshard_after_forward;
  plan.prefetch_layers = p.prefetch_layers;
  if (p.prefetch_layers != 1 && p.zero < 3) {
    throw Error("parallel.prefetch_layers", "applies to ZeRO-3 (FSDP's gathered weights); zero is " + str(p.zero));
  }
  if (p.fsdp_float8_all_gather) {
    const char* key = "parallel.fsdp_float8_all_gather";
    if (!plan.fp8()) throw Error(key, "gathers Float8 linears' weights: it needs training.precision fp8");
    if (p.zero < 3) throw Error(key, "applies to ZeRO-3 (FSDP's sharded weights); zero is " + str(p.zero));
    if (m.experts > 0 || m.kv_lora_rank > 0) {
      throw Error(key, "is built for dense models with plain attention (torchtitan's Llama); this model's experts or latent attention are not");
    }
    if (sc.cluster.gpu.cores > 0) throw Error(key, "applies to GPU clusters, not to the wafer step");
    plan.fp8_gather = true;
  }
  plan.grad_reduce_per_step = p.grad_reduce == "step";
  plan.grad_bytes = p.grad_reduce_dtype == "fp32" ? 4.0 : 2.0;
  if (plan.grad_bytes != 2.0 && sc.cluster.gpu.cores > 0) {
    throw Error("parallel.grad_reduce_dtype", "fp32 applies to GPU clusters; the wafer step reduces gradients in bf16");
  }
  if (p.reshard_set && p.zero < 3) {
    throw Error("parallel.reshard_after_forward", "applies to ZeRO-3 (FSDP's sharded weights); zero is " + str(p.zero));
  }
  if (p.grad_reduce_set && p.zero < 2) {
    throw Error("parallel.grad_reduce", "applies to ZeRO-2 and 3 (sharded gradients); with zero " + str(p.zero) +
                                            " gradients are reduced once per step");
  }
  plan.dp_shard = p.dp_shard > 0 ? p.dp_shard : plan.dp;
  if (plan.dp % plan.dp_shard != 0) {
    throw Error("parallel.dp_shard", str(plan.dp_shard) + " does not divide dp " + str(plan.dp));
  }
  if (plan.hybrid()) {
    if (p.zero == 0) throw Error("parallel.dp_shard", "hybrid sharding shards ZeRO's states: set parallel.zero to 1, 2 or 3");
    if (plan.dp_shard * p.cp == 1) {
      throw Error("parallel.dp_shard", "1 (with cp 1) shards nothing: that is plain data parallelism (parallel.zero 0)");
    }
    const long long edp = static_cast<long long>(plan.tp) * p.cp * plan.dp / (static_cast<long long>(p.ep) * plan.etp);
    const long long replicas = plan.dp / plan.dp_shard;
    if (m.experts > 0 && edp % replicas != 0) {
      throw Error("parallel.dp_shard", "the expert-data-parallel group of " + str(edp) + " ranks does not split into dp / dp_shard = " +
                                           str(replicas) + " replicas");
    }
    if (m.experts > 0 && edp == replicas) {
      throw Error("parallel.dp_shard", "the expert-data-parallel group of " + str(edp) + " ranks would split into " + str(replicas) +
                                           " parts of one rank each (experts replicated, not sharded): that is not built yet; choose a larger dp_shard");
    }
  }
  if (plan.seq_len % (2LL * p.cp) != 0 && p.cp > 1) {
    throw Error("parallel.cp", "2·cp = " + str(2LL * p.cp) + " does not divide training.seq_len " +
                                   str(plan.seq_len) + " (load-balanced causal context parallelism)");
  }
  limits::checked_mul(plan.global_batch, plan.seq_len, limits::kMaxTokensPerStep, "training.global_batch",
                      "tokens per step, global_batch·seq_len");
  const long long per_step = plan.micro_batch * plan.dp;  // at most 2^24 x 2^24
  if (plan.global_batch % per_step != 0) {
    throw Error("training.global_batch", str(plan.global_batch) + " is not a multiple of micro_batch·dp = " +
                                             str(per_step));
  }
  plan.micro_batches = plan.global_batch / per_step;
  // The step programs hold a few ops per micro-batch, stage and chunk.
  limits::checked_mul(plan.micro_batches, static_cast<long long>(p.pp) * plan.vpp, limits::kMaxPipelinePasses,
                      "training.global_batch", "pipeline passes per step, micro-batches·pp·vpp");
  if (p.pp > m.layers) throw Error("parallel.pp", str(p.pp) + " exceeds model.layers " + str(m.layers));
  if (plan.schedule != PipeSchedule::kGpipe && p.pp > 1 && plan.micro_batches < p.pp) {
    throw Error("training.global_batch", str(plan.micro_batches) + " micro-batches per pipeline are fewer than pp " +
                                             str(p.pp) + " (1F1B needs at least one per stage)");
  }
  if (plan.schedule == PipeSchedule::kDualPipe) {
    // DualPipe's own checks (deepseek-ai/DualPipe, DualPipe.step): pp even, the micro-batches
    // split evenly between the two directions, at least 2·pp of them.
    if (p.pp < 2 || p.pp % 2 != 0) throw Error("parallel.pp", "dualpipe needs an even pp of at least 2, not " + str(p.pp));
    if (plan.micro_batches % 2 != 0 || plan.micro_batches < 2LL * p.pp) {
      throw Error("training.global_batch", str(plan.micro_batches) + " micro-batches per pipeline: dualpipe needs an even "
                                               "number, at least 2·pp = " + str(2LL * p.pp) + " (half go each way)");
    }
  }
  if (v_shape) {
    if (p.microbatch_group > 0) {
      throw Error("parallel.microbatch_group", "groups micro-batches per chunk of the interleaved schedule, not zero-bubble-v");
    }
  } else if (p.vpp > 1) {
    if (plan.schedule != PipeSchedule::kInterleaved) {
      throw Error("parallel.vpp", "vpp " + str(p.vpp) + " needs schedule interleaved");
    }
    if (p.pp < 2) throw Error("parallel.vpp", "interleaving needs pp of at least 2");
    // Megatron-Core's rule: micro-batches run through each chunk in groups of G in [pp, m],
    // the last holding the rest; a last group of fewer than pp leaves the stages waiting on one
    // another (and can deadlock), so it is refused, with the smallest G that works.
    const long long m_count = plan.micro_batches, g = p.microbatch_group > 0 ? p.microbatch_group : p.pp;
    const auto fits = [&](long long size) { return m_count % size == 0 || m_count % size >= p.pp; };
    if (p.microbatch_group > 0 && (g < p.pp || g > m_count)) {
      throw Error("parallel.microbatch_group", str(g) + " is not between pp " + str(p.pp) + " and the " +
                                                   str(m_count) + " micro-batches per pipeline");
    }
    if (!fits(g)) {
      long long good = p.pp;
      while (!fits(good)) ++good;  // ends by good = m_count at the latest
      throw Error(p.microbatch_group > 0 ? "parallel.microbatch_group" : "training.global_batch",
                  str(m_count) + " micro-batches in groups of " + str(g) + " leave a last group of " +
                      str(m_count % g) + ", fewer than pp " + str(p.pp) +
                      " (Megatron-Core refuses it: the stages would wait on one another); set "
                      "parallel.microbatch_group to " + str(good) + " or make the micro-batches a multiple of pp");
    }
    plan.microbatch_group = static_cast<int>(g);
  } else if (plan.schedule == PipeSchedule::kInterleaved) {
    throw Error("parallel.vpp", "schedule interleaved needs vpp of at least 2");
  } else if (p.microbatch_group > 0) {
    throw Error("parallel.microbatch_group", "groups micro-batches per chunk of the interleaved schedule (vpp > 1)");
  }
  const int parts = p.pp * plan.vpp;
  if (!p.stage_layers.empty()) {
    if (static_cast<int>(p.stage_layers.size()) != parts) {
      throw Error("parallel.stage_layers", "lists " + str(static_cast<long long>(p.stage_layers.size())) +
                                               " stages but pp·vpp = " + str(parts));
    }
    const int sum = std::accumulate(p.stage_layers.begin(), p.stage_layers.end(), 0);
    if (sum != m.layers) {
      throw Error("parallel.stage_layers", "sum to " + str(sum) + " but model.layers is " + str(m.layers));
    }
    const PipeMap map(plan.schedule, p.pp, plan.vpp);
    for (int s = 0; s < p.pp; ++s) {
      int held = 0;
      for (int c = 0; c < map.chunks(); ++c) {
        const PipePlace at = map.at(c, s);
        held += p.stage_layers[static_cast<std::size_t>(at.layer_chunk * p.pp + at.layer_stage)];
      }
      if (held == 0) {
        throw Error("parallel.stage_layers", "stage " + str(s) + " holds no layer (its chunks are entries " +
                                                 (v_shape ? "s and 2·pp-1-s" : "s, s + pp, ...") + ")");
      }
    }
    plan.chunk_layers = p.stage_layers;
  } else {
    if (parts > m.layers) {
      throw Error("parallel.vpp", "pp·vpp = " + str(parts) + " exceeds model.layers " + str(m.layers) +
                                      "; parallel.stage_layers can leave chunks empty (Llama 3: 126 layers in 128 chunks)");
    }
    if (v_shape) {
      // By rank first (the extra layers to the middle ranks), then each rank's between its two
      // chunks, the first taking the odd one: the V's turn puts virtual stages pp-1 and pp on
      // one rank, so spreading by virtual stage would load it twice.
      const auto by_rank = spread_layers(m.layers, p.pp);
      plan.chunk_layers.assign(static_cast<std::size_t>(parts), 0);
      for (int r = 0; r < p.pp; ++r) {
        const int n = by_rank[static_cast<std::size_t>(r)];
        plan.chunk_layers[static_cast<std::size_t>(r)] = n - n / 2;
        plan.chunk_layers[static_cast<std::size_t>(2 * p.pp - 1 - r)] = n / 2;
      }
    } else {
      plan.chunk_layers = spread_layers(m.layers, parts);
    }
  }
  // Rank order: a permutation of tp, cp, dp, pp; "ep" may appear and is ignored (it lives in cp x dp).
  std::vector<std::string> order;
  std::string cur;
  for (char ch : p.order + "-") {
    if (ch == '-') {
      if (cur != "ep") order.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  std::vector<std::string> sorted = order, want = {"cp", "dp", "pp", "tp"};
  std::sort(sorted.begin(), sorted.end());
  if (sorted != want) {
    throw Error("parallel.order", quote_value(p.order) + " must order tp, cp, dp and pp (ep optional), e.g. tp-cp-ep-dp-pp");
  }
  std::copy(order.begin(), order.end(), plan.order.begin());
  if (m.mtp_layers > 0) {
    plan.mtp = true;
    if (sc.cluster.gpu.cores > 0) throw Error("model.mtp_layers", "multi-token prediction applies to GPU clusters, not to the wafer step");
    if (plan.tp > 1) throw Error("model.mtp_layers", "multi-token prediction with tensor parallelism (tp above 1) is not built yet");
  }
  if (p.moe_token_dispatcher == "deepep") {
    const char* key = "parallel.moe_token_dispatcher";
    if (plan.ep < 2) throw Error(key, "deepep dispatches tokens over expert parallelism: set parallel.ep above 1");
    if (sc.cluster.gpu.cores > 0) throw Error(key, "deepep runs on GPU clusters' scale-up domains, not on a wafer");
    if (plan.etp > 1) throw Error(key, "deepep with expert tensor parallelism (etp above 1) is not built yet");
    if (sc.cluster.scale_up_domain < 2) throw Error(key, "deepep forwards tokens inside scale-up domains, and this cluster has none");
    plan.dispatch_rail_share = domain_touch_chance(m, plan, sc) / m.top_k;
  }
  return plan;
}

Kernel optimizer_kernel(const Plan& p, double params) {
  return {KernelKind::kElementwise, p.optimizer, Flops::of(p.optimizer_flops * params),
          Bytes::of(params * (p.grad_bytes + 2.0 * p.optimizer_bytes + kWeightBytesPerParam))};
}

Shard shard_of(const ModelSpec&, const Plan& p) {
  Shard s;
  s.dropout = p.dropout;
  s.micro_batch = p.micro_batch;
  s.seq_len = p.seq_len;
  s.tp = p.tp;
  s.cp = p.cp;
  s.ep = p.ep;
  s.etp = p.etp;
  s.sp = p.sp;
  s.capacity_factor = p.capacity_factor;
  s.deepep = p.deepep();
  s.flash_attention = p.flash_attention;
  s.eager = p.eager;
  s.gemm_input_bytes = p.fp8() ? 1.0 : s.bytes_per_value;
  return s;
}

LayerParams layer_params(const ModelSpec& m, const ParamCount& pc, const Plan& p, int i) {
  if (!is_moe_layer(m, i)) return {pc.dense_layer / p.tp, 0.0};
  return {(pc.moe_layer - pc.moe_experts) / p.tp, pc.moe_experts / p.expert_shards()};
}

LayerParams head_params(const ModelSpec& m, const ParamCount& pc, const Plan& p) {
  LayerParams x{(pc.lm_head + static_cast<double>(m.hidden)) / p.tp + m.mtp_layers * (pc.mtp - pc.mtp_experts) / p.tp,
                m.mtp_layers * pc.mtp_experts / p.expert_shards()};
  if ((m.mtp_layers > 0 || m.tied_embeddings) && p.pp > 1 && !p.ends_together()) x.dense += pc.embedding / p.tp;
  return x;
}

double fp8_gathered_params(const ModelSpec& m, const ParamCount& pc, const Plan& p, int i) {
  if (!p.fp8_gather || is_moe_layer(m, i)) return 0.0;
  return (pc.dense_layer - 2.0 * static_cast<double>(m.hidden)) / p.tp;  // all but its two norms
}

int fp8_linears(const ModelSpec& m, const Plan& p, int i) {
  if (!p.fp8_gather || is_moe_layer(m, i)) return 0;
  return 4 + static_cast<int>(mlp_matrices(m));  // q, k, v, o and the MLP's
}

std::pair<double, double> stage_params(const ModelSpec& m, const Plan& p, int stage) {
  // The composed step's view (a stage's chunks c·pp + stage); ZB-V places chunks otherwise and
  // runs on the event engine only, which reads rank_params.
  if (p.schedule == PipeSchedule::kZeroBubbleV) throw std::logic_error("stage_params: ZB-V's ranks hold other chunks (rank_params)");
  const auto pc = count_params(m);
  double dense = 0, expert = 0;
  for (int c = 0; c < p.vpp; ++c) {
    const int first = p.first_layer(c, stage);
    for (int i = first; i < first + p.layers_of(c, stage); ++i) {
      const auto lp = layer_params(m, pc, p, i);
      dense += lp.dense;
      expert += lp.expert;
    }
  }
  if (stage == 0) dense += pc.embedding / p.tp;
  if (stage == p.pp - 1) {
    const auto head = head_params(m, pc, p);
    dense += head.dense;
    expert += head.expert;
  }
  return {dense, expert};
}

std::pair<double, double> rank_params(const ModelSpec& m, const Plan& p, int stage) {
  const auto pc = count_params(m);
  const PipeMap map(p.schedule, p.pp, p.vpp);
  double dense = 0, expert = 0;
  for (int c = 0; c < map.chunks(); ++c) {
    const PipePlace at = map.at(c, stage);
    const int first = p.first_layer(at.layer_chunk, at.layer_stage);
    for (int i = first; i < first + p.layers_of(at.layer_chunk, at.layer_stage); ++i) {
      const auto lp = layer_params(m, pc, p, i);
      dense += lp.dense;
      expert += lp.expert;
    }
    if (at.first) dense += pc.embedding / p.tp;
    if (at.last) {
      const auto head = head_params(m, pc, p);
      dense += head.dense;
      expert += head.expert;
    }
  }
  return {dense, expert};
}

}  // namespace wallsim::parallelism
