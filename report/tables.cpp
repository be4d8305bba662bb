#include "report/tables.hpp"

#include <cmath>
#include <stdexcept>

#include "parallelism/layout.hpp"
#include "report/svg.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace wallsim::report {
namespace {
void require_finite(const nlohmann::json& j, const std::string& where) {
  if (j.is_number_float() && !std::isfinite(j.get<double>())) {
    throw std::logic_error("a non-finite number at " + (where.empty() ? std::string("/") : where) + " of a JSON output");
  }
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) require_finite(v, where + "/" + k);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) require_finite(j[i], where + "/" + std::to_string(i));
  }
}

/// The stage's first rank.
int first_rank(const parallelism::Plan& p, int stage) {
  parallelism::Coords c;
  c.pp = stage;
  return parallelism::rank_of(p, c);
}

/// The rank an event shows: its own, else its stage's first.
int shown_rank(const engine::TimelineEvent& e, const parallelism::Plan& p) {
  return e.rank >= 0 ? e.rank : first_rank(p, e.stage);
}

}  // namespace

std::string json_text(const nlohmann::json& j, int indent) {
  require_finite(j, "");
  return j.dump(indent) + "\n";
}


const char* lane_name(int lane) {
  static const char* names[] = {"compute", "exposed comm (TP/SP/CP/EP)", "data-parallel comm", "pipeline sends and receives"};
  return lane >= 0 && lane < kLanes ? names[lane] : "other";
}

std::string stage_label(const parallelism::Plan& p, int stage) {
  return "stage " + std::to_string(stage) + " (rank " + std::to_string(first_rank(p, stage)) + ")";
}

std::string trace_json(const engine::StepResult& r, const parallelism::Plan& p) {
  nlohmann::json events = nlohmann::json::array();
  const int lanes = std::any_of(r.timeline.begin(), r.timeline.end(), [](const auto& e) { return e.lane == 3; }) ? 4 : 3;
  // One process a rank shown (each stage's first rank; under the event engine one rank of each
  // rank class), by rank.
  std::map<int, int> stage_of;
  for (int s = 0; s < p.pp; ++s) stage_of[first_rank(p, s)] = s;
  for (const auto& e : r.timeline) stage_of[shown_rank(e, p)] = e.stage;
  int order = 0;
  for (const auto& [rank, stage] : stage_of) {
    const std::string name = "stage " + std::to_string(stage) + " (rank " + std::to_string(rank) + ")";
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 0}, {"args", {{"name", name}}}});
    events.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", rank}, {"tid", 0}, {"args", {{"sort_index", order++}}}});
    for (int l = 0; l < lanes; ++l) {
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", l}, {"args", {{"name", lane_name(l)}}}});
    }
  }
  for (const auto& e : r.timeline) {
    events.push_back({{"name", e.name},
                      {"cat", e.lane == 0 ? "compute" : "comm"},
                      {"ph", "X"},
                      {"ts", e.start.value() * 1e6},
                      {"dur", (e.end - e.start).value() * 1e6},
                      {"pid", shown_rank(e, p)},
                      {"tid", e.lane}});
  }
  return json_text(nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}, -1);
}


const std::vector<std::string>& step_metric_names() {
  static const std::vector<std::string> names = {"step_time_s", "tokens_per_s", "mfu", "hfu", "exposed_comm_s",
                                                 "energy_per_token_j", "gpu_avg_w", "model_tflops_per_gpu"};
  return names;
}

double step_metric(const engine::StepResult& r, const std::string& name) {
  if (name == "step_time_s") return r.step_time.value();
  if (name == "tokens_per_s") return r.tokens_per_s;
  if (name == "mfu") return r.mfu;
  if (name == "hfu") return r.hfu;
  if (name == "exposed_comm_s") return r.exposed_comm.value();
  if (name == "energy_per_token_j") return r.energy_per_token_j;
  if (name == "gpu_avg_w") return r.gpu_avg_power.value();
  if (name == "model_tflops_per_gpu") return r.model_flops_per_gpu.value() / 1e12;
  throw std::logic_error("report: no step metric '" + name + "'");
}

std::string step_metric_label(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> labels = {
      {"step_time_s", "step time (s)"}, {"tokens_per_s", "tokens per second"}, {"mfu", "MFU (fraction of peak)"},
      {"hfu", "HFU (fraction of peak)"}, {"exposed_comm_s", "exposed communication (s)"},
      {"energy_per_token_j", "energy per token (J)"}, {"gpu_avg_w", "average GPU power (W)"},
      {"model_tflops_per_gpu", "model TFLOP/s per GPU"}};
  for (const auto& [n, l] : labels) {
    if (n == name) return l;
  }
  return name;
}

Table ranks_table(const engine::StepResult& r, const parallelism::Plan& p) {
  const auto n = static_cast<std::size_t>(p.gpus());
  std::vector<std::int64_t> rank(n), stage(n);
  std::vector<double> busy(n), comm(n), bubble(n), other(n), energy(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int s = parallelism::coords_of(p, static_cast<int>(i)).pp;
    const auto& st = r.stages.at(static_cast<std::size_t>(s));
    rank[i] = static_cast<std::int64_t>(i);
    stage[i] = s;
    busy[i] = st.compute.value();
    comm[i] = st.comm.value();
    bubble[i] = st.bubble.value();
    other[i] = st.other.value();
    energy[i] = st.energy.value();
  }
  Table t;
  t.add("rank", std::move(rank)).add("stage", std::move(stage)).add("busy_s", std::move(busy));
  t.add("comm_s", std::move(comm)).add("bubble_s", std::move(bubble)).add("other_s", std::move(other));
  t.add("energy_j", std::move(energy));
  return t;
}

Table timeline_table(const engine::StepResult& r, const parallelism::Plan& p) {
  std::vector<std::int64_t> rank;
  std::vector<std::string> kind, name;
  std::vector<double> start, end;
  for (const auto& e : r.timeline) {
    rank.push_back(shown_rank(e, p));
    kind.emplace_back(lane_name(e.lane));
    name.push_back(e.name);
    start.push_back(e.start.value());
    end.push_back(e.end.value());
  }
  Table t;
  t.add("rank", std::move(rank)).add("kind", std::move(kind)).add("name", std::move(name));
  t.add("start_s", std::move(start)).add("end_s", std::move(end));
  return t;
}

Table links_table(const topology::Topology& t, const std::vector<double>& bytes, Seconds span) {
  const std::size_t n = t.num_links();
  std::vector<std::int64_t> id(n);
  std::vector<std::string> from(n), to(n), cls(n);
  std::vector<double> bw(n), carried(n), busy(n), util(n);
  for (std::size_t l = 0; l < n; ++l) {
    const auto link = static_cast<topology::LinkId>(l);
    const auto& k = t.link(link);
    id[l] = static_cast<std::int64_t>(l);
    from[l] = t.node_name(t.link_source(link));
    to[l] = t.node_name(t.link_target(link));
    cls[l] = std::string(topology::to_string(k.cls));
    bw[l] = k.bandwidth.value();
    carried[l] = l < bytes.size() ? bytes[l] : 0.0;
    busy[l] = bw[l] > 0 ? carried[l] / bw[l] : 0.0;
    util[l] = span.value() > 0 ? busy[l] / span.value() : 0.0;
  }
  Table tab;
  tab.add("id", std::move(id)).add("from", std::move(from)).add("to", std::move(to)).add("class", std::move(cls));
  tab.add("bandwidth_Bps", std::move(bw)).add("bytes", std::move(carried)).add("busy_s", std::move(busy));
  tab.add("utilization", std::move(util));
  return tab;
}

std::string step_svg(const engine::StepResult& r, const parallelism::Plan& p, const GpuSpec& gpu,
                     const std::string& title) {
  TimelineChart tl;
  tl.title = title + ": one step, a rank per pipeline stage";
  tl.x_label = "time in the step (s)";
  tl.kinds = {lane_name(0), lane_name(1), lane_name(2)};
  // The pipeline lane only when the step has one (the event engine's sends and receives).
  if (std::any_of(r.timeline.begin(), r.timeline.end(), [](const auto& e) { return e.lane == 3; })) {
    tl.kinds.emplace_back(lane_name(3));
  }
  for (int s = 0; s < p.pp; ++s) tl.rows.push_back(stage_label(p, s));
  for (const auto& e : r.timeline) {  // each stage's first rank (the trace has every rank class)
    if (shown_rank(e, p) == first_rank(p, e.stage)) tl.bars.push_back({e.stage, e.lane, e.start.value(), e.end.value()});
  }

  LinePlot roof;
  roof.title = title + ": forward kernels on the " + gpu.name + " roofline (bf16 peak, HBM)";
  roof.x_label = "arithmetic intensity (FLOP per HBM byte)";
  roof.y_label = "achieved TFLOP/s";
  roof.log_x = roof.log_y = true;
  double lo = 1e300, hi = 0;
  std::set<std::string> seen;
  for (const auto& op : r.ops) {
    if (!(op.flops.value() > 0 && op.bytes.value() > 0 && op.time.value() > 0) || !seen.insert(op.name).second) continue;
    const double ai = op.flops.value() / op.bytes.value();
    lo = std::min(lo, ai);
    hi = std::max(hi, ai);
    LinePlot::Series s;
    s.name = op.name;
    s.line = false;
    s.marker = 5;
    s.points.emplace_back(ai, op.flops.value() / op.time.value() / 1e12);
    roof.series.push_back(std::move(s));
  }
  const double peak = gpu.bf16_dense.value() / 1e12, bw = gpu.memory_bandwidth.value() / 1e12;
  const double ridge = peak / bw;
  lo = std::min(lo, ridge) / 2;
  hi = std::max(hi, ridge) * 2;
  LinePlot::Series bound;
  bound.name = "roofline";
  bound.marker = 0;
  bound.color = "#444";
  bound.points = {{lo, lo * bw}, {ridge, peak}, {hi, peak}};
  roof.series.insert(roof.series.begin(), std::move(bound));
  return stack_svg({render_svg(tl), render_svg(roof)});
}

}  // namespace wallsim::report
