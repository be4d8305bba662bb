// `wallsim run SCENARIO.yaml`: one training step, where its time, memory and energy go.
// `wallsim search SCENARIO.yaml`: every valid plan of the scenario's cluster, ranked.
#include <algorithm>
#include <limits>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"
#include "engine/distribute.hpp"
#include "engine/search.hpp"
#include "engine/wafer_step.hpp"
#include "hardware/gpu_model.hpp"
#include "failures/reliability.hpp"
#include "parallelism/layout.hpp"
#include "report/hdf5.hpp"
#include "report/svg.hpp"
#include "report/tables.hpp"
#include "topology/spec.hpp"

namespace wallsim::cli {
namespace {

struct RunFlags {
  CommonFlags common;
  std::string scenario, network = "flow", power_cap, objective = "time", csv, trace, svg, engine = "events";
  std::size_t top = 10;
  CLI::Option* network_flag = nullptr;  ///< to tell a --network given from the default
};

/// --power-cap, range-checked against the scenario's GPU (hardware::check_power_cap).
Watts power_cap(const RunFlags& f, const GpuSpec& gpu) {
  if (f.power_cap.empty()) return Watts{};
  const Watts cap = parse<Watts>(f.power_cap, "--power-cap");
  hardware::check_power_cap(gpu, cap, "--power-cap");
  return cap;
}

/// A --network given on a wafer-scale cluster (engine::check_wafer_network).
void check_network(const RunFlags& f, const Scenario& s) {
  if (f.network_flag != nullptr && f.network_flag->count() > 0) engine::check_wafer_network(s.cluster, f.network, "--network");
}

std::string percent(double x) { return format_number(100.0 * x, 3) + " %"; }
std::string recompute_name(parallelism::Recompute r) {
  switch (r) {
    case parallelism::Recompute::kNone: return "none";
    case parallelism::Recompute::kSelective: return "selective";
    case parallelism::Recompute::kFull: return "full";
    case parallelism::Recompute::kOp: return "op";
  }
  return "?";
}

std::string gib(Bytes b) { return format_number(b.value() / (1024.0 * 1024 * 1024), 4) + " GiB"; }

}  // namespace

/// The most loaded stage's total, whether it fits (borderline: within 2 % of the capacity,
/// either side), and every stage's breakdown.
nlohmann::json memory_json(const engine::Memory& m) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : m.stages) {
    stages.push_back({{"stage", s.stage},
                      {"weights_bytes", s.weights.value()},
                      {"gradients_bytes", s.gradients.value()},
                      {"optimizer_bytes", s.optimizer.value()},
                      {"activations_bytes", s.activations.value()},
                      {"buffers_bytes", s.buffers.value()},
                      {"total_bytes", s.total().value()}});
  }
  return {{"peak_bytes_per_gpu", m.total().value()},
          {"allocator_reserve", m.reserve_fraction},
          {"reserved_bytes_per_gpu", m.reserved().value()},
          {"capacity_bytes", m.capacity.value()},
          {"peak_stage", m.stage},
          {"fits", m.fits()},
          {"borderline", m.borderline()},
          {"stages", std::move(stages)}};
}

/// "fits", "DOES NOT FIT", or borderline with how far from the capacity.
std::string fit_text(const engine::Memory& m) {
  if (!m.borderline()) return m.fits() ? "fits" : "DOES NOT FIT";
  const double off = 100.0 * (m.total().value() / m.capacity.value() - 1.0);
  char s[96];
  std::snprintf(s, sizeof s, "borderline: %.1f %% %s the capacity", std::abs(off), off > 0 ? "over" : "under");
  std::string out = s;
  if (m.reserved().value() > m.capacity.value() && off <= 0) {
    std::snprintf(s, sizeof s, ", %.1f %% over with the allocator's reserve", 100.0 * (m.reserved().value() / m.capacity.value() - 1.0));
    out += s;
  }
  return out;
}

/// What the model cannot yet judge about a plan, said beside its numbers (README, "How far to
/// trust the numbers").
std::vector<std::string> plan_caveats(const parallelism::Plan& p) {
  std::vector<std::string> out;
  if (p.zero >= 3 && p.dp * p.cp > 1) {
    out.push_back("zero3_unvalidated: ZeRO-3 throughput is not validated; DeepSpeed's measured ZeRO-3 runs "
                  "(Narayanan et al. Table 2) were 1.5-4x slower than this model gives");
  }
  return out;
}

/// The slow GPUs the step waited for, each with its stage and speed.
nlohmann::json stragglers_json(const engine::StepResult& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& x : r.stragglers) out.push_back({{"gpu", x.gpu}, {"stage", x.stage}, {"speed", x.speed}});
  return out;
}

nlohmann::json step_summary_json(const engine::StepResult& r) {
  nlohmann::json j = {{"step_time_s", r.step_time.value()},
          {"tokens_per_s", r.tokens_per_s},
          {"mfu", r.mfu},
          {"hfu", r.hfu},
          {"model_tflops_per_gpu", r.model_flops_per_gpu.value() / 1e12},
          {"hardware_tflops_per_gpu", r.hardware_flops_per_gpu.value() / 1e12},
          {"breakdown_s",
           {{"compute", r.compute.value()}, {"exposed_comm", r.exposed_comm.value()},
            {"bubble", r.bubble.value()}, {"other", r.other.value()}}},
          {"memory", memory_json(r.memory)},
          {"stragglers", stragglers_json(r)},
          {"energy", {{"step_j", r.step_energy.value()}, {"per_token_j", r.energy_per_token_j}}},
          {"power", {{"gpu_avg_w", r.gpu_avg_power.value()}, {"cluster_avg_w", r.cluster_avg_power.value()}}},
          {"bytes_moved",
           {{"hbm", r.hbm_bytes.value()}, {"scale_up", r.scale_up_bytes.value()},
            {"scale_out", r.scale_out_bytes.value()}}}};
  // The event engine's rank classes (classes.hpp): how many, and whether they took in the
  // links the ranks' connections share.
  if (r.rank_classes > 0) j["rank_classes"] = {{"count", r.rank_classes}, {"exact", r.classes_exact}};
  return j;
}

namespace {

/// Selective recompute's modules when they are not the default (the attention core alone).
std::string modules_text(const parallelism::Plan& p) {
  if (p.recompute != parallelism::Recompute::kSelective || p.recompute_modules == parallelism::kCoreAttn) return "";
  return " [" + parallelism::recompute_modules_text(p.recompute_modules) + "]";
}

std::string plan_text(const parallelism::Plan& p) {
  return "tp " + std::to_string(p.tp) + ", pp " + std::to_string(p.pp) + ", dp " + std::to_string(p.dp) +
         ", cp " + std::to_string(p.cp) + ", ep " + std::to_string(p.ep) + (p.etp != p.tp ? " (etp " + std::to_string(p.etp) + ")" : "") + (p.sp ? (p.tp_comm_overlap ? " (sp, tp comm overlap)" : " (sp)") : "") +
         ", vpp " + std::to_string(p.vpp) + ", mbs " + std::to_string(p.micro_batch) + ", zero " +
         std::to_string(p.zero) + ", recompute " +
         recompute_name(p.recompute) + modules_text(p) + ", " + parallelism::to_string(p.schedule);
}

const char* kStepCsvHeader =
    "step_time_s,tokens_per_s,mfu,hfu,model_tflops_per_gpu,compute_s,exposed_comm_s,bubble_s,other_s,"
    "peak_bytes_per_gpu,fits,memory_borderline,energy_per_token_j,gpu_avg_w";

std::string step_csv_row(const engine::StepResult& r) {
  std::ostringstream o;
  o.precision(10);
  o << r.step_time.value() << "," << r.tokens_per_s << "," << r.mfu << "," << r.hfu << ","
    << r.model_flops_per_gpu.value() / 1e12 << "," << r.compute.value() << "," << r.exposed_comm.value() << ","
    << r.bubble.value() << "," << r.other.value() << "," << r.memory.total().value() << ","
    << (r.memory.fits() ? "true" : "false") << "," << (r.memory.borderline() ? "true" : "false") << ","
    << r.energy_per_token_j << "," << r.gpu_avg_power.value();
  return o.str();
}

void run(const RunFlags& f) {
  const Presets presets(default_data_dir());
  const Scenario s = load_scenario(f.scenario, f.common.sets, presets);
  const parallelism::Plan plan = parallelism::make_plan(s);
  const engine::Memory mem = engine::memory_per_gpu(s, plan);
  if (mem.over()) {
    throw Error("parallel", "the plan does not fit: stage " + std::to_string(mem.stage) + " needs " + gib(mem.total()) +
                                " per GPU (weights " + gib(mem.weights) + ", gradients " + gib(mem.gradients) +
                                ", optimizer " + gib(mem.optimizer) + ", activations " + gib(mem.activations) +
                                ", buffers " + gib(mem.buffers) + ") but " + s.cluster.gpu.name + " has " +
                                gib(mem.capacity));
  }
  // Under mpirun each rank holds its part of the fabric and the step's flows split over the
  // ranks. The whole-run analysis (failures reroute around cables, checkpoints) and the HDF5
  // link table need every link: they get the whole fabric, built once the step is done.
  // The event engine routes every rank class's copies over the whole fabric: it gets all of it.
  const engine::World& world = engine::World::get();
  const bool events = f.engine == "events";
  std::optional<topology::Topology> part(events ? topology::build_step_fabric(s.cluster)
                                                : topology::build_step_fabric(s.cluster, {world.rank(), world.size()}));
  const auto network = collectives::NetworkModel::build(f.network, "--network");
  check_network(f, s);
  engine::StepOptions options = engine::step_options(network.get(), power_cap(f, s.cluster.gpu));
  options.timeline = !f.trace.empty() || !f.common.hdf5.empty() || !f.svg.empty();
  options.link_bytes = !f.common.hdf5.empty();
  options.partition = engine::flow_exchange();
  if (f.engine != "composed" && f.engine != "events") throw Error("--engine", "'" + f.engine + "' is not one of composed, events");
  const engine::StepResult r = events ? engine::simulate_step_events(s, plan, *part, options)
                                      : engine::simulate_step(s, plan, *part, options);
  const bool need_whole = (s.run && s.run->failures) || !f.common.hdf5.empty();
  if (need_whole && !part->whole()) {
    part.reset();
    part.emplace(topology::build_step_fabric(s.cluster));
  }
  const topology::Topology& t = *part;
  // With run.failures, the whole run too (fewer trials than `wallsim reliability`).
  std::optional<failures::ReliabilityResult> whole;
  if (s.run && s.run->failures) {
    failures::ReliabilityOptions o;
    o.network = network.get();
    o.trials = 200;
    o.search_trials = 200;
    o.seed = f.common.seed;
    o.blast_radius = false;
    // The run's steps (healthy, writing a checkpoint, with failed cables) on the step's engine,
    // or on the event engine when the plan has a choice only it runs.
    o.events = events || !plan.event_engine_only().empty();
    o.power_cap = options.power_cap;
    if (o.events == events) o.healthy = &r;  // the step above, on the same engine
    whole = failures::analyze_run(s, plan, t, o);
  }
  PendingFiles files;
  nlohmann::json summary = step_summary_json(r);
  summary["caveats"] = plan_caveats(plan);
  if (whole) summary["run"] = run_json(*whole);
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(summary));
  if (!f.csv.empty()) files.add(f.csv, std::string(kStepCsvHeader) + "\n" + step_csv_row(r) + "\n");
  if (!f.trace.empty()) files.add(f.trace, report::trace_json(r, plan));
  if (!f.svg.empty()) files.add(f.svg, report::step_svg(r, plan, s.cluster.gpu, s.name.empty() ? f.scenario : s.name));
  if (!f.common.hdf5.empty()) {
    report::Hdf5File h5;
    describe(h5, f.scenario, f.common);
    h5.attributes("/summary", summary);
    h5.table("/ranks", report::ranks_table(r, plan));
    h5.table("/timeline", report::timeline_table(r, plan));
    h5.table("/links", report::links_table(t, r.link_bytes, r.step_time));
    files.add(f.common.hdf5, h5.bytes());
  }
  if (!f.common.quiet && f.common.json != "-") {
    const double st = r.step_time.value();
    auto share = [&](Seconds x) { return to_string(x) + " (" + format_number(100.0 * x.value() / st, 3) + " %)"; };
    std::cout << "wallsim run: " << (s.name.empty() ? f.scenario : s.name) << ", " << plan.gpus() << " x "
              << s.cluster.gpu.name << ", network " << network->name() << "\n"
              << "plan: " << plan_text(plan) << ", " << plan.micro_batches << " micro-batches\n"
              << key_value_table({
                     {"step time", to_string(r.step_time)},
                     {"tokens/s", format_number(r.tokens_per_s, 4)},
                     {"MFU / HFU", percent(r.mfu) + " / " + percent(r.hfu)},
                     {"TFLOP/s per GPU", "model " + format_number(r.model_flops_per_gpu.value() / 1e12, 4) +
                                             ", hardware " + format_number(r.hardware_flops_per_gpu.value() / 1e12, 4)},
                     {"compute", share(r.compute)},
                     {"exposed comm", share(r.exposed_comm)},
                     {"bubble", share(r.bubble)},
                     {"other (optimizer)", share(r.other)},
                     {"memory per GPU", gib(r.memory.total()) + " of " + gib(r.memory.capacity) +
                                            " (" + fit_text(r.memory) + "): weights " +
                                            gib(r.memory.weights) + ", grads " + gib(r.memory.gradients) +
                                            ", optimizer " + gib(r.memory.optimizer) + ", activations " +
                                            gib(r.memory.activations) + ", buffers " + gib(r.memory.buffers) +
                                            (r.memory.reserve_fraction > 0 ? "; allocator reserve +" + percent(r.memory.reserve_fraction) +
                                                                                 ": " + gib(r.memory.reserved())
                                                                           : std::string())},
                     {"energy", to_string(r.step_energy) + " per step, " +
                                    format_number(r.energy_per_token_j, 4) + " J per token"},
                     {"power", to_string(r.gpu_avg_power) + " per GPU, " + to_string(r.cluster_avg_power) +
                                   " cluster" + (r.clock.value() > 0 ? " (clock " + to_string(r.clock) + ")" : std::string())},
                     {"bytes moved", "HBM " + to_string(r.hbm_bytes) + ", scale-up " + to_string(r.scale_up_bytes) +
                                         ", scale-out " + to_string(r.scale_out_bytes)},
                 });
    if (!r.stragglers.empty()) {
      std::set<int> stages;
      for (const auto& x : r.stragglers) stages.insert(x.stage);
      std::string list;
      for (int st : stages) list += (list.empty() ? "" : ", ") + std::to_string(st);
      const bool many = r.stragglers.size() > 1;
      std::cout << "stragglers         " << r.stragglers.size() << " slow GPU" << (many ? "s" : "") << " at "
                << format_number(100.0 * r.stragglers.front().speed, 3) << " % speed (gpu " << r.stragglers.front().gpu
                << (many ? ", ..." : "") << "; stage" << (stages.size() > 1 ? "s " : " ") << list << "): "
                << (many ? "their stages' peers and the pipeline wait for them\n" : "its stage's peers and the pipeline wait for it\n");
    }
    if (r.rank_classes > 0) {
      std::cout << "rank classes       " << r.rank_classes << " of " << plan.gpus() << " ranks simulated"
                << (r.classes_exact ? "\n"
                                    : " (by route costs only: split by the links their connections share, they were "
                                      "over the engine's budget; a class's copies of a transfer move at one rate)\n");
    }
    for (const auto& c : plan_caveats(plan)) std::cout << "caveat             " << c.substr(c.find(": ") + 2) << "\n";
    if (whole) {
      const auto& w = whole->stats;
      std::cout << "whole run (" << w.trials << " trials; wallsim reliability for causes and intervals): "
                << format_number(w.days.mean, 4) << " days, " << format_number(w.interruptions.mean, 4)
                << " interruptions, goodput " << percent(w.goodput.mean) << ", checkpoint every "
                << to_string(w.interval) << "\n";
    }
  }
  files.write_all();
}

/// Every plan of the search (best first): its parallel keys and the step metrics.
report::Table search_table(const engine::SearchResult& res) {
  std::vector<std::int64_t> rank, tp, pp, dp, cp, ep, etp, sp, vpp, mbs, zero;
  std::vector<std::string> recompute, schedule;
  for (std::size_t i = 0; i < res.plans.size(); ++i) {
    const auto& p = res.plans[i].first;
    rank.push_back(static_cast<std::int64_t>(i + 1));
    tp.push_back(p.tp);
    pp.push_back(p.pp);
    dp.push_back(p.dp);
    cp.push_back(p.cp);
    ep.push_back(p.ep);
    etp.push_back(p.etp);
    sp.push_back(p.sp ? 1 : 0);
    vpp.push_back(p.vpp);
    mbs.push_back(p.micro_batch);
    zero.push_back(p.zero);
    recompute.push_back(recompute_name(p.recompute));
    schedule.emplace_back(parallelism::to_string(p.schedule));
  }
  report::Table t;
  t.add("rank", rank).add("tp", tp).add("pp", pp).add("dp", dp).add("cp", cp).add("ep", ep).add("etp", etp);
  t.add("sp", sp).add("vpp", vpp).add("micro_batch", mbs).add("zero", zero).add("recompute", recompute);
  t.add("schedule", schedule);
  for (const auto& m : report::step_metric_names()) {
    std::vector<double> v;
    for (const auto& pr : res.plans) v.push_back(report::step_metric(pr.second, m));
    t.add(m, std::move(v));
  }
  std::vector<double> peak;
  for (const auto& pr : res.plans) peak.push_back(pr.second.memory.total().value());
  t.add("peak_bytes_per_gpu", std::move(peak));
  return t;
}

/// Step time against energy per token for every valid plan, the Pareto front (no plan both
/// faster and more frugal) joined and marked.
std::string pareto_svg(const engine::SearchResult& res, const std::string& title) {
  report::LinePlot plot;
  plot.title = title + ": " + std::to_string(res.plans.size()) + " valid plans that fit in memory";
  plot.x_label = "step time (s)";
  plot.y_label = "energy per token (J)";
  report::LinePlot::Series all, front;
  all.name = "plan";
  all.line = false;
  all.marker = 2.5;
  all.opacity = 0.35;
  all.color = "#1f77b4";
  front.name = "Pareto front";
  front.marker = 4.5;
  front.color = "#d62728";
  std::vector<std::pair<double, double>> pts;
  for (const auto& [p, r] : res.plans) pts.emplace_back(r.step_time.value(), r.energy_per_token_j);
  all.points = pts;
  std::sort(pts.begin(), pts.end());
  double best = std::numeric_limits<double>::infinity();
  for (const auto& pt : pts) {
    if (pt.second < best) {
      front.points.push_back(pt);
      best = pt.second;
    }
  }
  plot.series = {std::move(all), std::move(front)};
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const auto& pt : pts) {
    lo = std::min(lo, pt.first);
    hi = std::max(hi, pt.first);
  }
  plot.log_x = hi > 4 * lo;  // slow plans are many times the fastest
  return report::render_svg(plot);
}

void search(const RunFlags& f) {
  const Presets presets(default_data_dir());
  const Scenario s = load_scenario(f.scenario, f.common.sets, presets);
  if (f.objective != "time" && f.objective != "energy") {
    throw Error("--objective", "'" + f.objective + "' is not one of time, energy");
  }
  const auto network = collectives::NetworkModel::build(f.network, "--network");
  check_network(f, s);
  const topology::Topology t = topology::build_step_fabric(s.cluster);
  ProgressBar bar("search", f.common);
  const engine::SearchResult res = engine::search_plans(s, t, engine::step_options(network.get(), power_cap(f, s.cluster.gpu)),
                                                        f.objective == "energy", [&bar](double d) { bar.update(d); });
  nlohmann::json plans = nlohmann::json::array();
  std::ostringstream csv;
  csv << "rank,tp,pp,dp,cp,ep,vpp,micro_batch,zero,recompute,schedule," << kStepCsvHeader << "\n";
  std::ostringstream text;
  text << "wallsim search: " << (s.name.empty() ? f.scenario : s.name) << ": " << res.evaluated
       << " plans enumerated, " << res.valid << " valid, " << res.dropped_memory
       << " dropped (do not fit in memory), network " << network->name() << "\n";
  if (res.not_simulated > 0) {
    text << res.not_simulated << " plans that fit were not simulated; the first: " << res.not_simulated_why << "\n";
  }
  char line[512];
  std::snprintf(line, sizeof line, "%4s  %-78s %10s %7s %10s %12s\n", "rank", "plan", "step", "MFU", "memory", "energy/token");
  text << line;
  for (std::size_t i = 0; i < res.plans.size() && i < f.top; ++i) {
    const auto& [p, r] = res.plans[i];
    std::snprintf(line, sizeof line, "%4zu  %-78s %10s %6.2f%% %10s %10.4g J%s\n", i + 1, plan_text(p).c_str(),
                  to_string(r.step_time).c_str(), 100.0 * r.mfu, gib(r.memory.total()).c_str(), r.energy_per_token_j,
                  (std::string(r.memory.borderline() ? "  (memory borderline)" : "") +
                   (plan_caveats(p).empty() ? "" : "  (ZeRO-3: unvalidated)")).c_str());
    text << line;
    nlohmann::json j = step_summary_json(r);
    j["caveats"] = plan_caveats(p);
    j["parallel"] = {{"tp", p.tp}, {"pp", p.pp}, {"dp", p.dp}, {"cp", p.cp}, {"ep", p.ep}, {"sp", p.sp},
                     {"vpp", p.vpp}, {"micro_batch", p.micro_batch}, {"zero", p.zero},
                     {"recompute", recompute_name(p.recompute)},
                     {"schedule", parallelism::to_string(p.schedule)}, {"tp_comm_overlap", p.tp_comm_overlap}};
    plans.push_back(j);
    csv << i + 1 << "," << p.tp << "," << p.pp << "," << p.dp << "," << p.cp << "," << p.ep << "," << p.vpp << ","
        << p.micro_batch << "," << p.zero << "," << j["parallel"]["recompute"].get<std::string>() << ","
        << parallelism::to_string(p.schedule) << "," << step_csv_row(r) << "\n";
  }
  PendingFiles files;
  if (!f.svg.empty()) files.add(f.svg, pareto_svg(res, s.name.empty() ? f.scenario : s.name));
  if (!f.common.hdf5.empty()) {
    report::Hdf5File h5;
    describe(h5, f.scenario, f.common);
    h5.attributes("/summary", {{"evaluated", res.evaluated}, {"valid", res.valid}, {"dropped_memory", res.dropped_memory},
                               {"network", network->name()}, {"objective", f.objective}});
    h5.table("/search", search_table(res));
    files.add(f.common.hdf5, h5.bytes());
  }
  if (!f.common.json.empty()) {
    const nlohmann::json j = {{"plans", plans}, {"evaluated", res.evaluated}, {"valid", res.valid},
                              {"dropped_memory", res.dropped_memory}, {"not_simulated", res.not_simulated}};
    files.add(f.common.json, report::json_text(j));
  }
  if (!f.csv.empty()) files.add(f.csv, csv.str());
  if (!f.common.quiet && f.common.json != "-") std::cout << text.str();
  files.write_all();
}

void add_step_flags(CLI::App& cmd, RunFlags& f) {
  cmd.add_option("SCENARIO", f.scenario, "Scenario YAML file")->required();
  f.network_flag = cmd.add_option("--network", f.network, "analytic or flow (default " + f.network + ")");
  cmd.add_option("--power-cap", f.power_cap, "Cap each GPU's power, e.g. 500W (default: its TDP)");
  add_output_option(cmd, "--csv", f.csv, "Write the results as CSV to FILE");
  add_common_flags(cmd, f.common);
  add_hdf5_flag(cmd, f.common);
}

}  // namespace

void register_run(CLI::App& app, Action& action) {
  auto f = std::make_shared<RunFlags>();
  CLI::App* cmd = app.add_subcommand("run", "Simulate one training step: time, memory, energy");
  add_step_flags(*cmd, *f);
  add_output_option(*cmd, "--trace", f->trace, "Write the step as Chrome trace-event JSON (Perfetto)");
  add_output_option(*cmd, "--svg", f->svg, "Draw the step's timeline and its kernels' roofline as SVG");
  cmd->add_option("--engine", f->engine,
                  "events (default: the event engine, one rank per rank class simulated, every transfer a flow "
                  "on the shared fabric under --network flow) or composed (each collective costed alone, then "
                  "composed; what search ranks plans with)");
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

void register_search(CLI::App& app, Action& action) {
  auto f = std::make_shared<RunFlags>();
  f->network = "analytic";
  CLI::App* cmd = app.add_subcommand("search", "Rank every valid parallel plan of a scenario");
  add_step_flags(*cmd, *f);
  cmd->add_option("--top", f->top, "Plans to print (default 10)")->check(whole_number(1, 999'999'999));
  cmd->add_option("--objective", f->objective, "time or energy (default time)");
  add_output_option(*cmd, "--svg", f->svg, "Plot step time against energy per token, Pareto front marked");
  cmd->callback([f, &action] { action = [f] { search(*f); }; });
}

}  // namespace wallsim::cli
