#include "validation/validate.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <limits>

#include <yaml-cpp/yaml.h>

#include "collectives/network_model.hpp"
#include "core/optimize.hpp"
#include "failures/checkpoint.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/scenario.hpp"
#include "engine/step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/model_math.hpp"
#include "parallelism/plan.hpp"
#include "topology/spec.hpp"

namespace wallsim::validation {
namespace {

struct MetricName {
  Metric metric;
  const char* name;
};
constexpr MetricName kMetrics[] = {
    {Metric::kStepTime, "step_time_s"},
    {Metric::kTflopsPerGpu, "tflops_per_gpu"},
    {Metric::kLayerForward, "layer_forward_s"},
    {Metric::kLayerBackward, "layer_backward_s"},
    {Metric::kBusBandwidth, "busbw_GBps"},
    {Metric::kActivationBytes, "activation_bytes_per_layer"},
    {Metric::kCheckpointBytes, "checkpoint_bytes"},
    {Metric::kGemmTflops, "gemm_tflops"},
    {Metric::kAttentionTflops, "attention_tflops"},
};

Metric parse_metric(const Config& c) {
  const std::string s = c.as_string();
  std::string list;
  for (const auto& m : kMetrics) {
    if (s == m.name) return m.metric;
    list += (list.empty() ? "" : ", ") + std::string(m.name);
  }
  throw Error(c.path(), "'" + s + "' is not one of " + list);
}

/// "15%" or 0.15.
double parse_fraction(const Config& c) {
  std::string s = c.as_string();
  double scale = 1.0;
  if (!s.empty() && s.back() == '%') {
    s.pop_back();
    scale = 0.01;
  }
  const double v = Config(YAML::Node(s), c.path()).as_double() * scale;
  if (!(v > 0.0 && v < 10.0)) throw Error(c.path(), "must be a positive fraction or percentage, like 15%");
  return v;
}

std::string scalar_text(const YAML::Node& n) {
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

Case parse_case(const Config& c, const std::string& group, const std::string& file) {
  c.allow_only({"id", "group", "metric", "measured", "tolerance", "fit", "source", "assumptions", "scenario", "choose",
                "collective", "flops", "gemm", "attention", "engine"});
  Case k;
  k.id = c.at("id").as_string();
  k.group = c.find("group") ? c.at("group").as_string() : group;
  k.file = file;
  k.metric = parse_metric(c.at("metric"));
  k.measured = c.at("measured").as_double();
  if (!(k.measured > 0.0)) throw Error(c.path() + ".measured", "must be positive");
  k.tolerance = parse_fraction(c.at("tolerance"));
  if (auto f = c.find("fit")) {
    k.fit = f->as_bool();
    // Physical parameters are fitted on kernel- and component-level measurements; step and layer
    // times check them and fit nothing.
    if (k.fit && (k.metric == Metric::kStepTime || k.metric == Metric::kTflopsPerGpu || k.metric == Metric::kLayerForward ||
                  k.metric == Metric::kLayerBackward)) {
      throw Error(f->path(), "a step or layer time checks the calibrated parameters and cannot be a fit case");
    }
  }
  k.source = c.at("source").as_string();
  if (auto f = c.find("assumptions")) k.assumptions = f->as_string();
  if (auto f = c.find("engine")) {
    const std::string e = f->as_string();
    if (e != "events" && e != "composed") throw Error(f->path(), "'" + e + "' is not an engine: events or composed");
    k.events = e == "events";
  }
  const Config sc = c.at("scenario");
  if (!sc.is_map()) throw Error(sc.path(), "expected a scenario mapping");
  k.scenario_yaml = scalar_text(sc.yaml());
  if (auto ch = c.find("choose")) {
    if (!ch->is_map()) throw Error(ch->path(), "expected key: [candidates]");
    for (const auto& kv : ch->yaml()) {
      const std::string key = key_text(kv.first, ch->path());
      std::vector<std::string> values;
      const Config list(kv.second, ch->path() + "." + key);
      for (const auto& v : list.elements()) values.push_back(scalar_text(v.yaml()));
      if (values.empty()) throw Error(list.path(), "needs at least one candidate");
      k.choose.emplace_back(key, std::move(values));
    }
  }
  if (k.metric == Metric::kTflopsPerGpu) {
    k.flops = c.at("flops").as_string();
    if (k.flops != "narayanan") throw Error(c.path() + ".flops", "'" + k.flops + "' is not one of narayanan");
  }
  if (k.metric == Metric::kGemmTflops) {
    const Config g = c.at("gemm");
    g.allow_only({"b", "m", "n", "k", "precision", "sms_taken", "recipe", "pass"});
    auto dim = [&](const char* key) { return static_cast<double>(g.at(key).as_int(1, 1LL << 20, "GEMM dimensions")); };
    k.gemm_b = g.find("b") ? dim("b") : 1.0;
    k.gemm_m = dim("m");
    k.gemm_n = dim("n");
    k.gemm_k = dim("k");
    if (auto f = g.find("sms_taken")) k.gemm_sms_taken = static_cast<int>(f->as_int(0, 1'000'000, "SMs"));
    const std::string precision = g.find("precision") ? g.at("precision").as_string() : "bf16";
    if (precision != "bf16" && precision != "fp8") {
      throw Error(g.path() + ".precision", "'" + precision + "' is not one of bf16, fp8");
    }
    k.precision = precision == "fp8" ? "fp8" : "16-bit";
    k.gemm_fp8 = precision == "fp8";
    if (auto f = g.find("recipe")) {
      const std::string r = f->as_string();
      if (r != "tensorwise" && r != "blockwise") throw Error(f->path(), "'" + r + "' is not one of tensorwise, blockwise");
      if (!k.gemm_fp8) throw Error(f->path(), "scales FP8 GEMMs: it needs precision: fp8");
      k.gemm_blockwise = r == "blockwise";
    }
    if (auto f = g.find("pass")) {
      const std::string p = f->as_string();
      if (p != "forward" && p != "data_gradient" && p != "weight_gradient") {
        throw Error(f->path(), "'" + p + "' is not one of forward, data_gradient, weight_gradient");
      }
      k.gemm_wgrad = p == "weight_gradient";
    }
  }
  if (k.metric == Metric::kStepTime || k.metric == Metric::kTflopsPerGpu || k.metric == Metric::kLayerForward ||
      k.metric == Metric::kLayerBackward) {
    const auto t = sc.find("training");
    const auto p = t && t->is_map() ? t->find("precision") : std::nullopt;
    k.precision = p && p->as_string() == "fp8" ? "fp8" : "16-bit";
  }
  if (k.metric == Metric::kAttentionTflops) {
    k.precision = "16-bit";  // FlashAttention's and cuDNN's tables: fp16 or bf16 inputs
    const Config a = c.at("attention");
    a.allow_only({"batch", "seq", "heads", "kv_heads", "head_dim", "causal", "pass"});
    auto dim = [&](const char* key) { return static_cast<double>(a.at(key).as_int(1, 1LL << 20, "attention dimensions")); };
    k.att_batch = dim("batch");
    k.att_seq = dim("seq");
    k.att_heads = dim("heads");
    k.att_kv_heads = a.find("kv_heads") ? dim("kv_heads") : k.att_heads;
    k.att_head_dim = dim("head_dim");
    if (auto f = a.find("causal")) k.att_causal = f->as_bool();
    if (auto f = a.find("pass")) k.att_pass = f->as_string();
    if (k.att_pass != "forward" && k.att_pass != "backward" && k.att_pass != "both") {
      throw Error(a.path() + ".pass", "'" + k.att_pass + "' is not one of forward, backward, both");
    }
  }
  if (k.metric == Metric::kBusBandwidth) {
    const Config col = c.at("collective");
    col.allow_only({"op", "bytes", "algo", "group"});
    k.op = col.at("op").as_string();
    k.bytes = col.at("bytes").as_string();
    if (auto a = col.find("algo")) k.algo = a->as_string();
    collectives::parse_op(k.op, col.path() + ".op");
    (void)col.at("bytes").as<Bytes>();
    if (!k.algo.empty()) collectives::parse_algo(k.algo, col.path() + ".algo");
    if (auto g = col.find("group")) {
      for (const auto& e : g->elements()) k.endpoints.push_back(as_small_int(e));
      if (k.endpoints.size() < 2) throw Error(g->path(), "a collective needs at least 2 endpoints");
    }
  }
  return k;
}

/// Narayanan et al. SC'21 eq. 3: FLOPs of one iteration with full recompute.
double narayanan_flops(const Scenario& s, const parallelism::Plan& p) {
  const ModelSpec& m = *s.model;
  const double B = static_cast<double>(p.global_batch), q = static_cast<double>(p.seq_len);
  const double l = m.layers, h = static_cast<double>(m.hidden), V = static_cast<double>(m.vocab);
  return 96.0 * B * q * l * h * h * (1.0 + q / (6.0 * h) + V / (16.0 * l * h));
}

struct Candidate {
  double value = 0.0;
  double step = 0.0;  ///< ranks candidates: the fastest wins
};

/// The prediction of a training case for one scenario; nullopt when the plan does not fit.
std::optional<Candidate> predict_training(const Case& c, const Scenario& s, const Options& o) {
  if (!s.model) throw Error(c.id + ".scenario.model", "missing: the metric needs a model");
  const auto plan = parallelism::make_plan(s);
  if (c.metric == Metric::kActivationBytes) {
    const auto bytes = parallelism::layer_activation_bytes(*s.model, 0, engine::shard_of(*s.model, plan),
                                                           plan.recompute, plan.dropout, plan.recompute_modules);
    return Candidate{bytes.value(), 0.0};
  }
  if (c.metric == Metric::kCheckpointBytes) return Candidate{failures::checkpoint_shards(s, plan).total.value(), 0.0};
  if (!engine::memory_per_gpu(s, plan).fits()) return std::nullopt;
  const auto t = topology::build_step_fabric(s.cluster);
  const auto net = collectives::NetworkModel::build(o.network, "--network");
  // The case's engine (Case::events); the event engine where only it runs the plan (FSDP's
  // reduce-once or keep-weights, DualPipe, ...).
  const auto r = !c.events && plan.event_engine_only().empty()
                     ? engine::simulate_step(s, plan, t, engine::step_options(net.get()))
                     : engine::simulate_step_events(s, plan, t, engine::step_options(net.get()));
  const double step = r.step_time.value();
  switch (c.metric) {
    case Metric::kStepTime: return Candidate{step, step};
    case Metric::kTflopsPerGpu:
      return Candidate{narayanan_flops(s, plan) / static_cast<double>(plan.gpus()) / step / 1e12, step};
    case Metric::kLayerForward: return Candidate{r.layer_forward.value(), step};
    case Metric::kLayerBackward: return Candidate{r.layer_backward.value(), step};
    default: break;
  }
  throw std::logic_error("predict_training: metric");
}

/// One GEMM on one of the scenario's GPUs, by the roofline (tile and wave fill, depth
/// overhead, kernel overhead, HBM traffic: inputs at the precision's width, a bf16 output).
double predict_gemm(const Case& c, const Scenario& s) {
  if (c.gemm_blockwise && (s.cluster.gpu.fp8_blockwise_ratio <= 0.0 || s.cluster.gpu.fp8_blockwise_wgrad_ratio <= 0.0)) {
    throw Error(c.id + ".gemm.recipe", "blockwise: '" + s.cluster.gpu.name +
                                           "' has no measured rate for it (cluster.gpu.fp8_blockwise_ratio and fp8_blockwise_wgrad_ratio)");
  }
  if (c.gemm_fp8 && s.cluster.gpu.fp8_dense.value() <= 0.0) {
    throw Error(c.id + ".gemm.precision", "fp8: '" + s.cluster.gpu.name + "' has no fp8_dense peak");
  }
  const hardware::GpuModel gpu(s.cluster.gpu, {.precision = hardware::gemm_precision(c.gemm_fp8, c.gemm_blockwise)});
  if (c.gemm_sms_taken > 0 && c.gemm_sms_taken >= s.cluster.gpu.sms) {
    throw Error(c.id + ".gemm.sms_taken", std::to_string(c.gemm_sms_taken) + " SMs taken leave '" + s.cluster.gpu.name + "' (" +
                                              std::to_string(s.cluster.gpu.sms) + " SMs) none for the GEMM");
  }
  const double b = c.gemm_b, m = c.gemm_m, n = c.gemm_n, k = c.gemm_k, in = c.gemm_fp8 ? 1.0 : 2.0;
  parallelism::Kernel g{parallelism::KernelKind::kGemm, "gemm", Flops::of(2 * b * m * n * k),
                        Bytes::of(b * (in * (m * k + k * n) + 2.0 * m * n)), m, n, k, b};
  g.sms_taken = c.gemm_sms_taken;
  g.wgrad = c.gemm_wgrad;
  return 2 * b * m * n * k / gpu.time(g).value() / 1e12;
}

/// Fused attention on one of the scenario's GPUs, in bf16, as FlashAttention's benchmarks count
/// it: forward 4 x batch x heads x seq^2 x head_dim FLOPs (half when causal), backward 2.5x that.
double predict_attention(const Case& c, const Scenario& s) {
  const hardware::GpuModel gpu(s.cluster.gpu);
  const double b = c.att_batch, q = c.att_seq, a = c.att_heads, g = c.att_kv_heads, d = c.att_head_dim;
  const double forward = 4.0 * b * a * q * q * d * (c.att_causal ? 0.5 : 1.0);
  parallelism::Kernel k{parallelism::KernelKind::kAttention, "attention", Flops::of(forward),
                        Bytes::of(2.0 * b * q * d * (2.0 * a + 2.0 * g)), q, d, d, b * a, 1.0, true};
  k.keys = q;
  k.causal = c.att_causal;
  double flops = 0.0, time = 0.0;
  if (c.att_pass != "backward") {
    flops += forward;
    time += gpu.time(k).value();
  }
  if (c.att_pass != "forward") {
    flops += 2.5 * forward;
    time += gpu.time(parallelism::attention_backward(k)).value();
  }
  return flops / time / 1e12;
}

double predict_busbw(const Case& c, const Scenario& s, const Options& o) {
  const auto t = topology::build_step_fabric(s.cluster);
  std::vector<topology::NodeId> group;
  for (int e : c.endpoints) {
    if (static_cast<std::size_t>(e) >= t.num_endpoints()) {
      throw Error(c.id + ".collective.group", "endpoint " + std::to_string(e) + " does not exist");
    }
    group.push_back(static_cast<topology::NodeId>(e));
  }
  if (group.empty()) {
    for (std::size_t i = 0; i < t.num_endpoints(); ++i) group.push_back(static_cast<topology::NodeId>(i));
  }
  const auto op = collectives::parse_op(c.op, c.id + ".collective.op");
  const Bytes size = parse<Bytes>(c.bytes, c.id + ".collective.bytes");
  std::optional<collectives::Algo> algo;
  if (!c.algo.empty()) algo = collectives::parse_algo(c.algo, c.id + ".collective.algo");
  const auto net = collectives::NetworkModel::build(o.network, "--network");
  const auto choice = collectives::choose_schedule(t, op, group, size, {}, {}, algo, *net);
  return size.value() / choice.time.value() * collectives::busbw_factor(op, group.size()) / 1e9;
}

}  // namespace

std::string to_string(Metric m) {
  for (const auto& x : kMetrics) {
    if (x.metric == m) return x.name;
  }
  return "?";
}

bool Result::within() const { return std::abs(error) <= c->tolerance; }

std::vector<Case> load_cases(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir, "is not a directory of validation cases");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(dir, "holds no *.yaml case files");
  std::vector<Case> cases;
  for (const auto& f : files) {
    const std::string name = fs::path(f).filename().string();
    const Config root(parse_yaml(read_text_file(f), f), name);
    root.allow_only({"group", "description", "references", "defaults", "cases"});
    const std::string group = root.at("group").as_string();
    const YAML::Node defaults = root.find("defaults") ? root.at("defaults").yaml() : YAML::Node(YAML::NodeType::Map);
    for (const auto& item : root.at("cases").elements()) {
      if (!item.is_map()) throw Error(item.path(), "expected a case mapping");
      const Config merged(merge_yaml(defaults, item.yaml(), item.path()), item.path());
      cases.push_back(parse_case(merged, group, name));
    }
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (cases[i].id == cases[j].id) throw Error(cases[i].file, "case id '" + cases[i].id + "' appears twice");
    }
  }
  return cases;
}

Result run_case(const Case& c, const Presets& presets, const Options& o) {
  Result res;
  res.c = &c;
  // Every combination of the `choose` candidates (one when there are none).
  std::vector<std::size_t> at(c.choose.size(), 0);
  std::optional<Candidate> best;
  std::string last_error;
  while (true) {
    std::vector<std::string> sets = o.sets;
    std::string combo;
    for (std::size_t i = 0; i < c.choose.size(); ++i) {
      sets.push_back(c.choose[i].first + "=" + c.choose[i].second[at[i]]);
      combo += (combo.empty() ? "" : ", ") + c.choose[i].first + " " + c.choose[i].second[at[i]];
    }
    try {
      const Scenario s = parse_scenario(c.scenario_yaml, c.file + ": " + c.id, sets, presets);
      std::optional<Candidate> cand;
      if (c.metric == Metric::kBusBandwidth) {
        cand = Candidate{predict_busbw(c, s, o), 0.0};
      } else if (c.metric == Metric::kGemmTflops) {
        cand = Candidate{predict_gemm(c, s), 0.0};
      } else if (c.metric == Metric::kAttentionTflops) {
        cand = Candidate{predict_attention(c, s), 0.0};
      } else {
        cand = predict_training(c, s, o);
      }
      if (!cand) {
        last_error = "does not fit in memory" + (combo.empty() ? "" : " with " + combo);
      } else if (!best || cand->step < best->step) {
        best = cand;
        res.chosen = combo;
      }
    } catch (const Error& e) {
      // An invalid combination (vpp that does not divide the layers, ...) is skipped; the
      // case fails only when none is valid.
      if (c.choose.empty()) throw Error(c.id, e.what());
      last_error = e.what();
    }
    std::size_t i = 0;
    while (i < at.size() && ++at[i] == c.choose[i].second.size()) at[i++] = 0;
    if (i == at.size()) break;
  }
  if (!best) throw Error(c.id, "no valid plan among the candidates (last: " + last_error + ")");
  res.predicted = best->value;
  res.error = res.predicted / c.measured - 1.0;
  return res;
}

Summary summarize(const std::vector<Result>& results) {
  Summary s;
  s.cases = results.size();
  if (results.empty()) return s;
  std::vector<double> e;
  for (const auto& r : results) e.push_back(std::abs(r.error));
  std::sort(e.begin(), e.end());
  const std::size_t n = e.size();
  s.median_abs = n % 2 == 1 ? e[n / 2] : 0.5 * (e[n / 2 - 1] + e[n / 2]);
  s.max_abs = e.back();
  return s;
}

std::vector<double> fit(const std::vector<const Case*>& cases, const std::vector<FitKey>& keys,
                        const Presets& presets, const Options& o) {
  if (cases.empty()) throw Error("--fit", "no fit cases (fit: true) among the selected cases");
  std::vector<double> x;
  for (const auto& k : keys) x.push_back(0.5 * (k.lo + k.hi));
  auto objective = [&](const std::vector<double>& v) {
    Options with = o;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      char value[40];
      std::snprintf(value, sizeof value, "%.9g", v[i]);
      with.sets.push_back(keys[i].key + "=" + value + (keys[i].unit.empty() ? "" : " " + keys[i].unit));
    }
    double sum = 0.0;
    for (const Case* c : cases) {
      const double e = std::log1p(run_case(*c, presets, with).error);
      sum += e * e;
    }
    return sum / static_cast<double>(cases.size());
  };
  // Golden-section search along each key in turn; two sweeps settle keys that interact.
  const int sweeps = keys.size() > 1 ? 3 : 1;
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto at = [&](double v) {
        auto y = x;
        y[i] = v;
        return objective(y);
      };
      x[i] = golden_section_min(at, keys[i].lo, keys[i].hi, 1e-3 * (keys[i].hi - keys[i].lo), 1000);
    }
  }
  return x;
}

}  // namespace wallsim::validation
