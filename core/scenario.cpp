#include "core/scenario.hpp"

#include <limits>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "core/text.hpp"

namespace wallsim {
namespace {

/// A section that may be a preset name, a mapping, or a mapping with `preset:` plus overrides.
Config resolve(const Config& c, PresetKind kind, const Presets& presets) {
  if (c.is_scalar()) {
    return Config(presets.get(kind, c.as_string(), c.path()), c.path());
  }
  if (!c.is_map()) throw Error(c.path(), "expected a preset name or a mapping");
  if (auto p = c.find("preset")) {
    YAML::Node base = presets.get(kind, p->as_string(), p->path());
    YAML::Node over = YAML::Clone(c.yaml());
    over.remove("preset");
    return Config(merge_yaml(base, over, c.path()), c.path());
  }
  return c;
}

/// A count from 1 to `max` (limits.hpp says why each maximum).
long long positive(const Config& c, long long max, std::string_view why) { return c.as_int(1, max, why); }

int positive_int(const Config& c, long long max, std::string_view why) {
  return static_cast<int>(c.as_int(1, std::min<long long>(max, 1'000'000'000), why));
}

int optional_int(const Config& c, std::string_view key, int fallback, long long max, std::string_view why) {
  auto f = c.find(key);
  return f ? positive_int(*f, max, why) : fallback;
}

long long optional_ll(const Config& c, std::string_view key, long long fallback, long long max,
                      std::string_view why) {
  auto f = c.find(key);
  return f ? positive(*f, max, why) : fallback;
}

constexpr std::string_view kGpusWhy = "the limit on GPUs and parallel degrees";
constexpr std::string_view kLayersWhy = "the limit on layers";
constexpr std::string_view kWidthWhy = "the limit on model widths";
constexpr std::string_view kHeadsWhy = "the limit on attention heads";
constexpr std::string_view kExpertsWhy = "the limit on experts";
constexpr std::string_view kSeqWhy = "the limit on sequence length";
constexpr std::string_view kBatchWhy = "the limit on sequences per step";
constexpr std::string_view kPassesWhy = "the limit on pipeline passes per step";

std::string one_of(const Config& c, std::initializer_list<std::string_view> allowed) {
  const std::string v = c.as_string();
  std::string list;
  for (auto a : allowed) {
    if (a == v) return v;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw Error(c.path(), quote_value(v) + " is not one of " + list);
}

std::optional<YAML::Node> expand_for_set(const std::string& path, const std::string& scalar) {
  if (path == "cluster" || path == "cluster.gpu" || path == "model" ||
      path == "cluster.scale_up" || path == "cluster.scale_out" || path == "run.failures.rates") {
    YAML::Node m(YAML::NodeType::Map);
    m["preset"] = scalar;
    return m;
  }
  return std::nullopt;
}

TrainingSpec parse_training(const Config& c) {
  c.allow_only({"seq_len", "global_batch", "micro_batch", "precision", "capacity_factor",
                "flash_attention", "optimizer", "master_weights", "optimizer_states", "dropout", "kernels", "moe_dispatch", "fp8_recipe",
                "allocator_reserve"});
  TrainingSpec t;
  if (auto f = c.find("seq_len")) t.seq_len = positive(*f, limits::kMaxSeqLen, kSeqWhy);
  t.global_batch = positive(c.at("global_batch"), limits::kMaxBatch, kBatchWhy);
  t.micro_batch = optional_ll(c, "micro_batch", 1, limits::kMaxBatch, kBatchWhy);
  if (auto f = c.find("precision")) t.precision = one_of(*f, {"bf16", "fp16", "fp8"});
  if (auto f = c.find("fp8_recipe")) t.fp8_recipe = one_of(*f, {"tensorwise", "blockwise"});
  if (auto f = c.find("flash_attention")) t.flash_attention = f->as_bool();
  if (auto f = c.find("optimizer")) t.optimizer = one_of(*f, {"adam", "adamw", "lamb", "sgd"});
  if (auto f = c.find("master_weights")) t.master_weights = one_of(*f, {"fp32", "bf16"});
  if (auto f = c.find("optimizer_states")) t.optimizer_states = one_of(*f, {"fp32", "bf16"});
  if (auto f = c.find("dropout")) t.dropout = f->as_bool();
  if (auto f = c.find("kernels")) t.kernels = one_of(*f, {"fused", "eager"});
  if (auto f = c.find("moe_dispatch")) t.moe_dispatch = one_of(*f, {"bf16", "fp8"});
  if (auto f = c.find("capacity_factor")) {
    t.capacity_factor = f->as_double();
    if (!(t.capacity_factor >= 1.0)) throw Error(f->path(), "must be at least 1");
  }
  if (auto f = c.find("allocator_reserve")) {
    const double x = f->as_double();
    if (!(x >= 0.0 && x < 1.0)) throw Error(f->path(), "must be a fraction of the tensors' memory, from 0 to below 1, not " + quote_value(f->as_string()));
    t.allocator_reserve = x;
  }
  return t;
}

ParallelSpec parse_parallel(const Config& c) {
  c.allow_only({"tp", "pp", "dp", "cp", "ep", "etp", "sp", "vpp", "schedule", "zero", "recompute",
                "stage_layers", "order", "overlap_grad_reduce", "overlap_param_gather", "wafer_mode", "microbatch_group",
                "tp_comm_overlap", "dp_shard", "reshard_after_forward", "grad_reduce", "recompute_modules",
                "moe_token_dispatcher", "grad_reduce_dtype", "overlap_p2p_comm", "fsdp_float8_all_gather",
                "prefetch_layers", "overlap_moe_expert_parallel_comm"});
  ParallelSpec p;
  p.tp = optional_int(c, "tp", 1, limits::kMaxGpus, kGpusWhy);
  p.pp = optional_int(c, "pp", 1, limits::kMaxGpus, kGpusWhy);
  p.dp = optional_int(c, "dp", 0, limits::kMaxGpus, kGpusWhy);
  p.cp = optional_int(c, "cp", 1, limits::kMaxGpus, kGpusWhy);
  p.ep = optional_int(c, "ep", 1, limits::kMaxGpus, kGpusWhy);
  p.etp = optional_int(c, "etp", 0, limits::kMaxGpus, kGpusWhy);
  p.vpp = optional_int(c, "vpp", 1, limits::kMaxLayers, kLayersWhy);
  p.microbatch_group = optional_int(c, "microbatch_group", 0, limits::kMaxPipelinePasses, kPassesWhy);
  p.dp_shard = optional_int(c, "dp_shard", 0, limits::kMaxGpus, kGpusWhy);
  p.prefetch_layers = optional_int(c, "prefetch_layers", 1, limits::kMaxLayers, kLayersWhy);
  if (auto f = c.find("sp")) p.sp = f->as_bool();
  if (auto f = c.find("schedule")) {
    p.schedule = one_of(*f, {"gpipe", "1f1b", "interleaved", "zero-bubble", "zero-bubble-v", "dualpipe"});
  }
  if (auto f = c.find("zero")) {
    const long long z = f->as_int();
    if (z < 0 || z > 3) throw Error(f->path(), "must be 0, 1, 2 or 3, not " + quote_value(f->as_string()));
    p.zero = static_cast<int>(z);
  }
  if (auto f = c.find("recompute")) p.recompute = one_of(*f, {"none", "selective", "full", "op"});
  if (auto f = c.find("recompute_modules")) {
    const auto list = f->elements();  // empty: Megatron's default, the attention core
    if (list.size() > 4) throw Error(f->path(), "names " + std::to_string(list.size()) + " modules; there are 4");
    // The names are checked where they become bits (parallelism::parse_recompute_modules).
    for (const auto& e : list) p.recompute_modules.push_back(e.as_string());
    if (!list.empty() && p.recompute != "selective") {
      throw Error(f->path(), "needs recompute: selective (Megatron-Core's --recompute-granularity selective), not " +
                                 quote_value(p.recompute));
    }
  }
  if (auto f = c.find("stage_layers")) {
    const auto stages = f->elements();
    if (static_cast<long long>(stages.size()) > limits::kMaxLayers) {
      limits::out_of_range(f->path(), std::to_string(stages.size()) + " stages", limits::kMaxLayers, kLayersWhy);
    }
    // A chunk may be empty (Llama 3 405B: 126 layers in 128 one-layer chunks, the first holding
    // only the embedding and the last only the head); plan.cpp checks each stage holds a layer.
    for (const auto& e : stages) p.stage_layers.push_back(static_cast<int>(e.as_int(0, limits::kMaxLayers, kLayersWhy)));
  }
  if (auto f = c.find("order")) p.order = f->as_string();
  if (auto f = c.find("overlap_grad_reduce")) p.overlap_grad_reduce = f->as_bool();
  if (auto f = c.find("overlap_param_gather")) p.overlap_param_gather = f->as_bool();
  if (auto f = c.find("overlap_p2p_comm")) p.overlap_p2p_comm = f->as_bool();
  if (auto f = c.find("tp_comm_overlap")) p.tp_comm_overlap = f->as_bool();
  if (auto f = c.find("overlap_moe_expert_parallel_comm")) p.overlap_moe_expert_parallel_comm = f->as_bool();
  if (auto f = c.find("moe_token_dispatcher")) p.moe_token_dispatcher = one_of(*f, {"alltoall", "deepep"});
  if (auto f = c.find("reshard_after_forward")) {
    p.reshard_after_forward = f->as_bool();
    p.reshard_set = true;
  }
  if (auto f = c.find("grad_reduce")) {
    p.grad_reduce = one_of(*f, {"microbatch", "step"});
    p.grad_reduce_set = true;
  }
  if (auto f = c.find("grad_reduce_dtype")) p.grad_reduce_dtype = one_of(*f, {"bf16", "fp32"});
  if (auto f = c.find("fsdp_float8_all_gather")) p.fsdp_float8_all_gather = f->as_bool();
  if (auto f = c.find("wafer_mode")) {
    p.wafer_mode = f->as_string();
    if (p.wafer_mode != "streaming" && p.wafer_mode != "pipelined") {
      throw Error(f->path(), quote_value(p.wafer_mode) + " is not one of streaming, pipelined");
    }
  }
  return p;
}

FailureCause parse_cause(const Config& c, const std::string& name, double ref_gpus, double ref_nodes,
                         Seconds window) {
  c.allow_only({"count", "rate", "component", "per", "repair", "weibull_shape"});
  FailureCause f;
  f.name = name;
  f.component = one_of(c.at("component"), {"gpu", "node", "nic", "link", "software", "planned"});
  f.per = c.has("per") ? one_of(c.at("per"), {"gpu", "node", "job"}) : "gpu";
  if (auto r = c.find("rate")) {
    f.rate = r->as<Frequency>();
    f.source = r->source();
  } else {
    const Config n = c.at("count");
    const double units = f.per == "gpu" ? ref_gpus : f.per == "node" ? ref_nodes : 1.0;
    if (window.value() <= 0.0 || units <= 0.0) {
      throw Error(n.path(), "a count needs the preset's window and gpus/nodes");
    }
    f.rate = Frequency::of(n.as_double() / units / window.value());
    f.source = n.source();
  }
  if (f.rate.value() < 0.0) throw Error(c.path(), "a failure rate cannot be negative");
  if (auto r = c.find("repair")) f.repair = r->as<Seconds>();
  if (auto k = c.find("weibull_shape")) {
    f.weibull_shape = k->as_double();
    if (!(f.weibull_shape > 0.0)) throw Error(k->path(), "must be positive");
  }
  return f;
}

FailureSpec parse_failures(const Config& raw, const Presets& presets) {
  raw.allow_only({"rates", "detection", "restart", "spare_nodes"});
  FailureSpec s;
  const Config r = raw.at("rates");
  if (r.is_scalar()) s.preset = r.as_string();
  else if (auto p = r.find("preset")) s.preset = p->as_string();
  const Config c = resolve(r, PresetKind::kFailures, presets);
  c.allow_only({"description", "gpus", "nodes", "window", "causes", "detection", "restart"});
  const double gpus = c.has("gpus") ? c.at("gpus").as_count() : 0.0;
  const double nodes = c.has("nodes") ? c.at("nodes").as_count() : 0.0;
  const Seconds window = c.has("window") ? c.at("window").as<Seconds>() : Seconds{};
  const Config causes = c.at("causes");
  for (const auto& name : causes.keys()) {
    s.causes.push_back(parse_cause(causes.at(name), name, gpus, nodes, window));
  }
  if (s.causes.empty()) throw Error(causes.path(), "lists no causes");
  // Detection and restart: the scenario's, else the preset's.
  auto seconds = [&](const char* key) {
    if (auto f = raw.find(key)) return f->as<Seconds>();
    return c.at(key).as<Seconds>();
  };
  s.detection = seconds("detection");
  s.restart = seconds("restart");
  if (auto f = raw.find("spare_nodes")) {
    const long long n = f->as_int();
    if (n < 0 || n > 1'000'000'000) throw Error(f->path(), "must be a count of nodes, 0 or more");
    s.spare_nodes = static_cast<int>(n);
  }
  return s;
}

RunSpec parse_run(const Config& c, const Presets& presets) {
  c.allow_only({"tokens", "checkpoint", "failures"});
  RunSpec r;
  r.tokens = c.at("tokens").as_count();
  if (!(r.tokens > 0.0)) throw Error(c.path() + ".tokens", "must be positive");
  if (auto ck = c.find("checkpoint")) {
    ck->allow_only({"interval", "mode", "snapshot_bandwidth"});
    if (auto iv = ck->find("interval"); iv && iv->as_string() != "auto") {
      r.checkpoint_interval = iv->as<Seconds>();
      if (!(r.checkpoint_interval->value() > 0.0)) throw Error(iv->path(), "must be positive (or auto)");
    }
    if (auto m = ck->find("mode")) r.async_checkpoint = one_of(*m, {"sync", "async"}) == "async";
    if (r.async_checkpoint) {
      r.snapshot_bandwidth = ck->at("snapshot_bandwidth").as<Bandwidth>();
      if (!(r.snapshot_bandwidth.value() > 0.0)) throw Error(ck->path() + ".snapshot_bandwidth", "must be positive");
    }
  }
  if (auto f = c.find("failures")) r.failures = parse_failures(*f, presets);
  return r;
}

Scenario parse_scenario_tree(const std::string& text, const std::string& origin,
                             const std::vector<std::string>& overrides, const Presets& presets);

}  // namespace

LinkSpec parse_link(const Config& raw, const Presets& presets) {
  Config c = resolve(raw, PresetKind::kLinks, presets);
  LinkSpec l;
  if (auto p = raw.is_map() ? raw.find("preset") : std::nullopt) l.preset = p->as_string();
  if (raw.is_scalar()) l.preset = raw.as_string();
  l.bandwidth = c.at("bandwidth").as<Bandwidth>();
  if (l.bandwidth.value() <= 0.0) throw Error(c.path() + ".bandwidth", "must be positive");
  if (auto f = c.find("latency")) l.latency = f->as<Seconds>();
  if (auto f = c.find("energy")) l.energy = f->as<EnergyPerBit>();
  if (auto f = c.find("efficiency")) {
    l.efficiency = f->as_double();
    if (!(l.efficiency > 0.0 && l.efficiency <= 1.0)) throw Error(f->path(), "must be in (0, 1]");
  }
  if (auto f = c.find("switch_reduction")) {
    l.switch_reduction = f->as_double();
    if (!(l.switch_reduction > 0.0 && l.switch_reduction <= 1.0)) throw Error(f->path(), "must be in (0, 1]");
  }
  // NCCL caps channels at MAXCHANNELS: 32 up to 2.23, 64 since 2.25 (src/include/device.h);
  // 0: collectives that hold no SMs (copy-engine collectives, NCCL_CTA_POLICY_ZERO).
  if (auto f = c.find("nccl_channels")) l.nccl_channels = static_cast<int>(f->as_int(0, 64, "NCCL's MAXCHANNELS"));
  if (auto f = c.find("nccl_channels_per_gpu")) {
    l.nccl_channels_per_gpu = static_cast<int>(f->as_int(0, 64, "NCCL's MAXCHANNELS"));
  }
  return l;
}

GpuSpec parse_gpu(const Config& raw, const Presets& presets) {
  Config c = resolve(raw, PresetKind::kGpus, presets);
  c.allow_only({"description", "notes", "kind", "bf16_dense", "fp8_dense", "memory",
                "memory_bandwidth", "scale_up_bandwidth", "tdp", "idle_power", "min_power_limit", "base_clock",
                "boost_clock", "sustained_clock", "memory_energy", "cores", "sram_per_core", "mesh",
                "fabric_bandwidth", "gemm_efficiency", "fp8_efficiency_ratio", "fp8_blockwise_ratio", "fp8_blockwise_wgrad_ratio",
                "gemm_depth_overhead", "attention_efficiency",
                "attention_backward_efficiency", "attention_depth_overhead", "attention_backward_depth_overhead",
                "memory_efficiency", "norm_backward_efficiency", "kernel_overhead", "dynamic_power", "sms", "gemm_tile", "gemm_tile_intensity",
                "attention_block", "sfu_per_sm_clock", "attention_softmax_overlap", "routing_entries", "core_power"});
  GpuSpec g;
  g.name = raw.is_scalar() ? raw.as_string()
                           : (raw.has("preset") ? raw.at("preset").as_string() : "custom");
  if (auto f = c.find("description")) g.description = f->as_string();
  if (auto f = c.find("cores")) g.cores = positive(*f, 1LL << 32, "");
  // A wafer-scale part may lack a published dense peak; a GPU may not.
  if (g.cores == 0 || c.has("bf16_dense")) g.bf16_dense = c.at("bf16_dense").as<FlopRate>();
  if (auto f = c.find("fp8_dense")) g.fp8_dense = f->as<FlopRate>();
  g.memory = c.at("memory").as<Bytes>();
  g.memory_bandwidth = c.at("memory_bandwidth").as<Bandwidth>();
  if (auto f = c.find("scale_up_bandwidth")) g.scale_up_bandwidth = f->as<Bandwidth>();
  g.tdp = c.at("tdp").as<Watts>();
  if (auto f = c.find("idle_power")) g.idle_power = f->as<Watts>();
  if (auto f = c.find("min_power_limit")) g.min_power_limit = f->as<Watts>();
  if (auto f = c.find("base_clock")) g.base_clock = f->as<Frequency>();
  if (auto f = c.find("boost_clock")) g.boost_clock = f->as<Frequency>();
  if (auto f = c.find("sustained_clock")) g.sustained_clock = f->as<Frequency>();
  if (auto f = c.find("memory_energy")) g.memory_energy = f->as<EnergyPerBit>();
  if (auto f = c.find("sram_per_core")) g.sram_per_core = f->as<Bytes>();
  if (auto f = c.find("routing_entries")) g.routing_entries = positive_int(*f, 1'000'000'000, "");
  if (auto f = c.find("core_power")) g.core_power = f->as<Watts>();
  for (auto [key, field] : {std::pair{"gemm_efficiency", &g.gemm_efficiency},
                            std::pair{"attention_efficiency", &g.attention_efficiency},
                            std::pair{"attention_backward_efficiency", &g.attention_backward_efficiency},
                            std::pair{"memory_efficiency", &g.memory_efficiency},
                            std::pair{"norm_backward_efficiency", &g.norm_backward_efficiency}}) {
    if (auto f = c.find(key)) {
      *field = f->as_double();
      if (!(*field > 0.0 && *field <= 1.0)) throw Error(f->path(), "must be in (0, 1]");
    }
  }
  for (auto [key, field] : {std::pair{"fp8_efficiency_ratio", &g.fp8_efficiency_ratio},
                            std::pair{"fp8_blockwise_ratio", &g.fp8_blockwise_ratio},
                            std::pair{"fp8_blockwise_wgrad_ratio", &g.fp8_blockwise_wgrad_ratio}}) {
    if (auto f = c.find(key)) {
      *field = f->as_double();
      if (!(*field > 0.0 && *field <= 2.0)) throw Error(f->path(), "must be in (0, 2]");
    }
  }
  if (auto f = c.find("gemm_depth_overhead")) {
    g.gemm_depth_overhead = f->as_double();
    if (!(g.gemm_depth_overhead >= 0.0)) throw Error(f->path(), "must be zero or positive");
  }
  for (auto [key, field] : {std::pair{"attention_depth_overhead", &g.attention_depth_overhead},
                            std::pair{"attention_backward_depth_overhead", &g.attention_backward_depth_overhead}}) {
    if (auto f = c.find(key)) {
      *field = f->as_double();
      if (!(*field >= 0.0 && *field <= 1e6)) throw Error(f->path(), "must be between 0 and 1,000,000 keys");
    }
  }
  if (auto f = c.find("kernel_overhead")) g.kernel_overhead = f->as<Seconds>();
  if (auto f = c.find("dynamic_power")) g.dynamic_power = f->as<Watts>();
  if (auto f = c.find("sms")) g.sms = positive_int(*f, 1'000'000, "");
  if (auto f = c.find("attention_block")) g.attention_block = positive_int(*f, 1'000'000, "");
  if (auto f = c.find("sfu_per_sm_clock")) g.sfu_per_sm_clock = static_cast<int>(f->as_int(0, 1'000'000, ""));  // 0: no softmax term
  if (auto f = c.find("attention_softmax_overlap")) {
    g.attention_softmax_overlap = f->as_double();
    if (!(g.attention_softmax_overlap >= 0.0 && g.attention_softmax_overlap <= 1.0)) {
      throw Error(f->path(), "must be between 0 (the softmax after the matmuls) and 1 (wholly beside them)");
    }
  }
  if (auto f = c.find("gemm_tile_intensity")) {
    g.gemm_tile_intensity = f->as_double();
    if (!(g.gemm_tile_intensity >= 0.0 && g.gemm_tile_intensity <= 1e4)) {
      throw Error(f->path(), "must be between 0 and 10,000 values (a tile's multiply-adds per value loaded)");
    }
  }
  if (auto f = c.find("gemm_tile")) {
    // "256x128": rows x columns of the output tile one thread block computes.
    std::vector<int> dims;
    try {
      dims = parse_dims(*f);
    } catch (const Error&) {
      dims.clear();
    }
    if (dims.size() != 2) throw Error(f->path(), quote_value(f->as_string()) + " is not a tile like 256x128");
    g.gemm_tile_rows = dims[0];
    g.gemm_tile_cols = dims[1];
  }
  if (g.cores == 0 && g.bf16_dense.value() <= 0.0) {
    throw Error(c.path() + ".bf16_dense", "must be positive");
  }
  return g;
}

ModelSpec parse_model(const Config& raw, const Presets& presets) {
  Config c = resolve(raw, PresetKind::kModels, presets);
  c.allow_only({"description", "notes", "layers", "hidden", "heads", "kv_heads", "head_dim",
                "ffn", "vocab", "activation", "tied_embeddings", "seq_len", "experts",
                "shared_experts", "top_k", "moe_ffn", "dense_layers", "q_lora_rank",
                "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                "router_groups", "router_group_topk", "mtp_layers", "params"});
  ModelSpec m;
  m.name = raw.is_scalar() ? raw.as_string()
                           : (raw.has("preset") ? raw.at("preset").as_string() : "custom");
  if (auto f = c.find("description")) m.description = f->as_string();
  m.layers = positive_int(c.at("layers"), limits::kMaxLayers, kLayersWhy);
  m.hidden = positive(c.at("hidden"), limits::kMaxWidth, kWidthWhy);
  m.heads = positive_int(c.at("heads"), limits::kMaxHeads, kHeadsWhy);
  m.kv_heads = optional_int(c, "kv_heads", m.heads, limits::kMaxHeads, kHeadsWhy);
  m.head_dim = optional_ll(c, "head_dim", m.hidden / m.heads, limits::kMaxWidth, kWidthWhy);
  if (m.head_dim < 1) throw Error(c.path() + ".heads", std::to_string(m.heads) + " heads exceed hidden " + std::to_string(m.hidden));
  m.ffn = positive(c.at("ffn"), limits::kMaxWidth, kWidthWhy);
  m.vocab = positive(c.at("vocab"), limits::kMaxWidth, kWidthWhy);
  if (auto f = c.find("activation")) m.activation = one_of(*f, {"swiglu", "gelu"});
  if (auto f = c.find("tied_embeddings")) m.tied_embeddings = f->as_bool();
  if (auto f = c.find("seq_len")) m.seq_len = positive(*f, limits::kMaxSeqLen, kSeqWhy);
  if (auto f = c.find("experts")) m.experts = positive_int(*f, limits::kMaxExperts, kExpertsWhy);
  if (auto f = c.find("shared_experts")) m.shared_experts = static_cast<int>(f->as_int(0, limits::kMaxExperts, kExpertsWhy));
  if (auto f = c.find("top_k")) m.top_k = positive_int(*f, limits::kMaxExperts, kExpertsWhy);
  if (auto f = c.find("moe_ffn")) m.moe_ffn = positive(*f, limits::kMaxWidth, kWidthWhy);
  if (auto f = c.find("dense_layers")) m.dense_layers = static_cast<int>(f->as_int(0, limits::kMaxLayers, kLayersWhy));
  if (auto f = c.find("router_groups")) m.router_groups = positive_int(*f, limits::kMaxExperts, kExpertsWhy);
  if (auto f = c.find("router_group_topk")) m.router_group_topk = positive_int(*f, limits::kMaxExperts, kExpertsWhy);
  if (auto f = c.find("mtp_layers")) m.mtp_layers = static_cast<int>(f->as_int(0, limits::kMaxLayers, kLayersWhy));
  for (auto [key, field] : {std::pair{"q_lora_rank", &m.q_lora_rank}, std::pair{"kv_lora_rank", &m.kv_lora_rank},
                            std::pair{"qk_nope_head_dim", &m.qk_nope_head_dim},
                            std::pair{"qk_rope_head_dim", &m.qk_rope_head_dim}, std::pair{"v_head_dim", &m.v_head_dim}}) {
    if (auto f = c.find(key)) *field = positive(*f, limits::kMaxWidth, kWidthWhy);
  }
  if (auto f = c.find("params")) m.published_params = f->as_count();
  if (m.heads % m.kv_heads != 0) {
    throw Error(c.path() + ".kv_heads", std::to_string(m.kv_heads) + " does not divide heads " +
                                            std::to_string(m.heads));
  }
  if (m.experts > 0) {
    if (m.top_k <= 0 || m.top_k > m.experts) {
      throw Error(c.path() + ".top_k", "must be between 1 and experts (" +
                                           std::to_string(m.experts) + ")");
    }
    if (m.moe_ffn == 0) m.moe_ffn = m.ffn;
  }
  if ((m.router_groups > 0) != (m.router_group_topk > 0)) {
    throw Error(c.path() + (m.router_groups > 0 ? ".router_group_topk" : ".router_groups"),
                "missing: group-limited routing needs both router_groups and router_group_topk");
  }
  if (m.router_groups > 0) {
    if (m.experts == 0) throw Error(c.path() + ".router_groups", "needs routed experts (experts)");
    if (m.experts % m.router_groups != 0) {
      throw Error(c.path() + ".router_groups", std::to_string(m.router_groups) + " does not divide experts " +
                                                   std::to_string(m.experts));
    }
    if (m.router_group_topk > m.router_groups || m.router_group_topk > m.top_k) {
      throw Error(c.path() + ".router_group_topk", "must be at most router_groups (" + std::to_string(m.router_groups) +
                                                       ") and top_k (" + std::to_string(m.top_k) + ")");
    }
    if (static_cast<long long>(m.router_group_topk) * (m.experts / m.router_groups) < m.top_k) {
      throw Error(c.path() + ".router_group_topk", "leaves fewer experts than top_k (" + std::to_string(m.top_k) +
                                                       ") in a token's groups");
    }
  }
  if (m.dense_layers > m.layers) {
    throw Error(c.path() + ".dense_layers", "exceeds layers " + std::to_string(m.layers));
  }
  return m;
}

/// cluster.slow_gpus: {gpus: [ids], speed: s} or {fraction: f, speed: s, seed: n}; a fraction
/// picks round(f x gpus) GPUs (at least one), those whose mixed id (with the seed) is smallest:
/// the same GPUs on every machine and library.
ClusterSpec::SlowGpus parse_slow_gpus(const Config& c, long long gpus) {
  c.allow_only({"gpus", "fraction", "speed", "seed"});
  ClusterSpec::SlowGpus s;
  const Config speed = c.at("speed");
  s.speed = speed.as_double();
  if (!(s.speed > 0.0 && s.speed <= 1.0)) {
    throw Error(speed.path(), "is a slow GPU's compute rate relative to its peers: above 0 and at most 1, not " +
                                  quote_value(speed.as_string()));
  }
  const auto list = c.find("gpus");
  const auto fraction = c.find("fraction");
  if (list.has_value() == fraction.has_value()) throw Error(c.path(), "give either gpus (a list of ids) or fraction");
  if (list) {
    const auto ids = list->elements();
    if (ids.empty()) throw Error(list->path(), "lists no GPU");
    if (static_cast<long long>(ids.size()) > gpus) {
      throw Error(list->path(), "lists " + std::to_string(ids.size()) + " GPUs but the cluster has " + std::to_string(gpus));
    }
    for (const auto& e : ids) s.gpus.push_back(e.as_int(0, gpus - 1, "the cluster's GPU ids"));
    std::sort(s.gpus.begin(), s.gpus.end());
    if (std::adjacent_find(s.gpus.begin(), s.gpus.end()) != s.gpus.end()) throw Error(list->path(), "lists a GPU twice");
    if (c.has("seed")) throw Error(c.path() + ".seed", "picks GPUs for a fraction; a list needs none");
    return s;
  }
  const double f = fraction->as_double();
  if (!(f > 0.0 && f <= 1.0)) throw Error(fraction->path(), "must be above 0 and at most 1, not " + quote_value(fraction->as_string()));
  const long long n = std::max(1LL, std::llround(f * static_cast<double>(gpus)));
  const std::uint64_t seed = c.has("seed") ? static_cast<std::uint64_t>(c.at("seed").as_int(0, std::numeric_limits<long long>::max(), "seeds")) : 0;
  std::vector<std::pair<std::uint64_t, long long>> order;
  order.reserve(static_cast<std::size_t>(gpus));
  for (long long g = 0; g < gpus; ++g) order.emplace_back(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(g)), g);
  std::partial_sort(order.begin(), order.begin() + n, order.end());
  for (long long i = 0; i < n; ++i) s.gpus.push_back(order[static_cast<std::size_t>(i)].second);
  std::sort(s.gpus.begin(), s.gpus.end());
  return s;
}

ClusterSpec parse_cluster(const Config& raw, const Presets& presets) {
  Config c = resolve(raw, PresetKind::kClusters, presets);
  c.allow_only({"description", "notes", "gpu", "nodes", "gpus_per_node", "scale_up",
                "scale_out", "storage", "external_memory", "power_cap", "slow_gpus",
                "degraded_links"});
  ClusterSpec k;
  k.name = raw.is_scalar() ? raw.as_string()
                           : (raw.has("preset") ? raw.at("preset").as_string() : "custom");
  if (auto f = c.find("description")) k.description = f->as_string();
  k.gpu = parse_gpu(c.at("gpu"), presets);
  k.nodes = positive(c.at("nodes"), limits::kMaxGpus, kGpusWhy);
  k.gpus_per_node = positive_int(c.at("gpus_per_node"), limits::kMaxGpus, kGpusWhy);
  limits::checked_mul(k.nodes, k.gpus_per_node, limits::kMaxGpus, c.path() + ".nodes", "GPUs, nodes x gpus_per_node");
  k.scale_up_domain = k.gpus_per_node;
  if (auto su = c.find("scale_up")) {
    Config s = resolve(*su, PresetKind::kLinks, presets);
    s.allow_only({"description", "notes", "bandwidth", "latency", "energy", "efficiency", "switch_reduction", "domain",
                  "nccl_channels", "nccl_channels_per_gpu"});
    k.scale_up = parse_link(*su, presets);
    if (auto d = s.find("domain")) k.scale_up_domain = positive_int(*d, limits::kMaxGpus, kGpusWhy);
    // A domain need not divide the job: a job on part of an NVL72 rack, or over racks of
    // which the last is partial (its NVSwitch joins the GPUs the job has there).
    if (k.scale_up_domain % k.gpus_per_node != 0) {
      throw Error(s.path() + ".domain", "must be a multiple of gpus_per_node " +
                                            std::to_string(k.gpus_per_node));
    }
  } else if (k.gpus_per_node > 1) {
    if (k.gpu.scale_up_bandwidth.value() <= 0.0) {
      throw Error(c.path() + ".scale_up", "missing, and the GPU gives no scale_up_bandwidth");
    }
    k.scale_up.bandwidth = k.gpu.scale_up_bandwidth;
  }
  if (auto so = c.find("scale_out")) {
    Config s = resolve(*so, PresetKind::kLinks, presets);
    ScaleOutSpec out;
    out.topology = s.at("topology").as_string();
    out.link = parse_link(*so, presets);
    if (auto f = s.find("switch_latency")) out.switch_latency = f->as<Seconds>();
    if (auto f = s.find("flows_per_connection")) {
      if (k.gpu.cores > 0) throw Error(f->path(), "applies to GPU clusters, not to a wafer (its fabric has no ECMP)");
      out.flows_per_connection = positive_int(*f, 1024, "");
    }
    out.params = s;
    k.scale_out = out;
  } else if (k.gpus() > k.scale_up_domain) {
    throw Error(c.path() + ".scale_out", "missing: " + std::to_string(k.gpus()) +
                                             " GPUs span more than one scale-up domain of " +
                                             std::to_string(k.scale_up_domain));
  }
  // NCCL's channels hold SMs beside the compute (engine/simulate.hpp): a gather and a scatter
  // in flight at once must leave the kernels some.
  const long long across = k.nccl_sms_across(k.gpus_per_node);
  const bool out_more = across > k.scale_up.nccl_channels;
  const std::string channels_key = c.path() + (out_more ? ".scale_out.nccl_channels_per_gpu" : ".scale_up.nccl_channels");
  const long long held = std::max<long long>(across, k.scale_up.nccl_channels);
  if (k.gpu.cores > 0 && held > 0) throw Error(channels_key, "applies to GPU clusters, not to a wafer (no NCCL kernels)");
  if (k.gpu.sms > 0 && 2 * held >= k.gpu.sms) {
    throw Error(channels_key, "gives " + std::to_string(held) + " SMs a collective; a gather and a scatter at once would hold " +
                                  std::to_string(2 * held) + " of " + k.gpu.name + "'s " + std::to_string(k.gpu.sms) +
                                  " SMs, leaving its kernels none");
  }
  if (auto st = c.find("storage")) {
    st->allow_only({"bandwidth", "nodes"});
    StorageSpec s;
    s.bandwidth = st->at("bandwidth").as<Bandwidth>();
    s.nodes = optional_int(*st, "nodes", 1, 65'536, "storage nodes each cable to every spine");
    k.storage = s;
  }
  if (auto f = c.find("power_cap")) {  // range-checked against the GPU where a step runs
    k.power_cap = f->as<Watts>();
    if (k.power_cap->value() <= 0.0) throw Error(f->path(), "must be positive, not " + quote_value(f->as_string()));
  }
  if (auto f = c.find("slow_gpus")) k.slow_gpus = parse_slow_gpus(*f, k.gpus());
  if (auto f = c.find("degraded_links")) {
    if (k.gpu.cores > 0) throw Error(f->path(), "applies to GPU clusters, not to a wafer");
    const auto list = f->elements();
    if (list.empty()) throw Error(f->path(), "lists no link; give [{link: leaf0-spine0, factor: 0.5}, ...]");
    for (const auto& e : list) {
      e.allow_only({"link", "factor"});
      ClusterSpec::DegradedLink d;
      d.link = e.at("link").as_string();
      d.path = e.path();
      const Config factor = e.at("factor");
      d.factor = factor.as_double();
      if (!(d.factor > 0.0 && d.factor <= 1.0)) {
        throw Error(factor.path(), "is the share of its bandwidth a degraded link keeps: above 0 and at most 1, not " +
                                       quote_value(factor.as_string()));
      }
      k.degraded_links.push_back(std::move(d));
    }
  }
  if (auto f = c.find("external_memory")) {
    k.external_memory = f->as<Bytes>();
    if (k.external_memory->value() <= 0.0) throw Error(f->path(), "must be positive, not " + quote_value(f->as_string()));
  }
  return k;
}

Scenario parse_scenario(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides, const Presets& presets) {
  try {
    return parse_scenario_tree(text, origin, overrides, presets);
  } catch (const YAML::Exception& e) {
    // A structure the typed readers did not foresee; still bad input, not an internal error.
    throw Error(origin, "invalid scenario structure: " + e.msg);
  }
}

namespace {
Scenario parse_scenario_tree(const std::string& text, const std::string& origin,
                             const std::vector<std::string>& overrides, const Presets& presets) {
  YAML::Node root = parse_yaml(text, origin);
  if (!root.IsMap()) throw Error(origin, "a scenario is a YAML mapping with a 'cluster:' key");
  for (const auto& o : overrides) apply_override(root, o, expand_for_set);
  Config c(root, "");
  c.allow_only({"name", "description", "source", "notes", "cluster", "model", "training",
                "parallel", "run"});
  Scenario s;
  if (auto f = c.find("name")) s.name = f->as_string();
  if (auto f = c.find("description")) s.description = f->as_string();
  if (auto f = c.find("source")) s.source = f->as_string();
  s.cluster = parse_cluster(c.at("cluster"), presets);
  if (auto f = c.find("model")) s.model = parse_model(*f, presets);
  if (auto f = c.find("training")) s.training = parse_training(*f);
  if (auto f = c.find("parallel")) s.parallel = parse_parallel(*f);
  if (auto f = c.find("run")) s.run = parse_run(*f, presets);
  YAML::Emitter e;
  e << root;
  s.resolved_yaml = e.c_str();
  return s;
}
}  // namespace

Scenario load_scenario(const std::string& path, const std::vector<std::string>& overrides,
                       const Presets& presets) {
  return parse_scenario(read_text_file(path), path, overrides, presets);
}

}  // namespace wallsim
