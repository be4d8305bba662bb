// `wallsim reliability SCENARIO.yaml`: the whole run with failures and checkpoints —
// interruptions and lost hours by cause, checkpoint overhead, goodput and the best interval,
// as means with 95 % confidence intervals over Monte Carlo trials; and what one failure takes
// down on the scenario's fabric (or on any TOPOLOGY given with --blast-radius).
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "cli/progress.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "failures/reliability.hpp"
#include "report/hdf5.hpp"
#include "topology/spec.hpp"

namespace wallsim::cli {
namespace {

struct ReliabilityFlags {
  CommonFlags common;
  std::string scenario, network = "flow", blast_topology, csv, engine = "events";
  int trials = 1000;
  bool no_blast = false;
};

nlohmann::json estimate(const failures::Estimate& e) { return {{"mean", e.mean}, {"ci95", e.ci95}}; }

std::string pm(const failures::Estimate& e, int digits = 4) {
  return format_number(e.mean, digits) + " ± " + format_number(e.ci95, 2);
}

std::string blast_text(const std::vector<failures::BlastRow>& rows) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "  %-22s %-34s %9s %10s %12s\n", "component", "example", "cut off", "job loses",
                "all-reduce");
  out << line;
  for (const auto& b : rows) {
    std::snprintf(line, sizeof line, "  %-22s %-34s %9zu %10zu %11.3fx\n", b.component.c_str(), b.example.c_str(),
                  b.cut_off, b.job_loses, b.allreduce_slowdown);
    out << line;
  }
  return out.str();
}

nlohmann::json blast_json(const std::vector<failures::BlastRow>& rows) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& b : rows) {
    a.push_back({{"component", b.component}, {"example", b.example}, {"cut_off", b.cut_off},
                 {"job_loses", b.job_loses}, {"allreduce_slowdown", b.allreduce_slowdown},
                 {"allreduce_ranks", b.allreduce_ranks}});
  }
  return a;
}

report::Table blast_table(const std::vector<failures::BlastRow>& rows) {
  std::vector<std::string> component, example;
  std::vector<std::int64_t> cut, loses, ranks;
  std::vector<double> slowdown;
  for (const auto& b : rows) {
    component.push_back(b.component);
    example.push_back(b.example);
    cut.push_back(static_cast<std::int64_t>(b.cut_off));
    loses.push_back(static_cast<std::int64_t>(b.job_loses));
    ranks.push_back(static_cast<std::int64_t>(b.allreduce_ranks));
    slowdown.push_back(b.allreduce_slowdown);
  }
  report::Table t;
  t.add("component", component).add("example", example).add("cut_off", cut).add("job_loses", loses);
  t.add("allreduce_slowdown", slowdown).add("allreduce_ranks", ranks);
  return t;
}

/// Interruptions and lost hours by cause, means and 95 % confidence half-widths.
report::Table cause_table(const failures::RunStats& st) {
  std::vector<double> n, n_ci, lost, lost_ci;
  for (std::size_t i = 0; i < st.causes.size(); ++i) {
    n.push_back(st.interruptions_by_cause[i].mean);
    n_ci.push_back(st.interruptions_by_cause[i].ci95);
    lost.push_back(st.lost_hours_by_cause[i].mean);
    lost_ci.push_back(st.lost_hours_by_cause[i].ci95);
  }
  report::Table t;
  t.add("cause", st.causes).add("interruptions", n).add("interruptions_ci95", n_ci);
  t.add("lost_hours", lost).add("lost_hours_ci95", lost_ci);
  return t;
}

void run(const ReliabilityFlags& f) {
  const auto network = collectives::NetworkModel::build(f.network, "--network");
  PendingFiles files;
  if (!f.blast_topology.empty()) {  // only the blast radius of a fabric
    const topology::Topology t = build_fabric(f.blast_topology, f.common, {});
    const auto rows = failures::blast_radius(t, *network, Bytes::of(256.0 * 1024 * 1024));
    if (!f.common.json.empty()) files.add(f.common.json, report::json_text(nlohmann::json{{"blast_radius", blast_json(rows)}}));
    if (!f.common.hdf5.empty()) {
      report::Hdf5File h5;
      describe(h5, f.blast_topology, f.common);
      h5.table("/blast_radius", blast_table(rows));
      files.add(f.common.hdf5, h5.bytes());
    }
    if (!f.common.quiet && f.common.json != "-") {
      std::cout << "wallsim reliability: blast radius on " << f.blast_topology << " (all-reduce of 256 MiB over the survivors "
                << "among the first 512 endpoints, network " << network->name() << ")\n" << blast_text(rows);
    }
    files.write_all();
    return;
  }
  if (f.scenario.empty()) throw Error("SCENARIO", "give a scenario file (or --blast-radius TOPOLOGY)");
  const Presets presets(default_data_dir());
  const Scenario s = load_scenario(f.scenario, f.common.sets, presets);
  const parallelism::Plan plan = parallelism::make_plan(s);
  const topology::Topology t = topology::build_step_fabric(s.cluster);
  failures::ReliabilityOptions o;
  o.network = network.get();
  o.trials = f.trials;
  o.seed = f.common.seed;
  o.blast_radius = !f.no_blast;
  if (f.engine != "composed" && f.engine != "events") throw Error("--engine", "'" + f.engine + "' is not one of composed, events");
  o.events = f.engine == "events";
  ProgressBar bar("reliability", f.common);
  o.progress = [&bar](double done) { bar.update(done); };
  const failures::ReliabilityResult r = failures::analyze_run(s, plan, t, o);
  nlohmann::json j = run_json(r);
  j["trials"] = r.stats.trials;
  j["days_ci95"] = r.stats.days.ci95;
  j["interruptions_ci95"] = r.stats.interruptions.ci95;
  j["goodput_ci95"] = r.stats.goodput.ci95;
  nlohmann::json by_count = nlohmann::json::object(), by_lost = nlohmann::json::object();
  for (std::size_t i = 0; i < r.stats.causes.size(); ++i) {
    by_count[r.stats.causes[i]] = estimate(r.stats.interruptions_by_cause[i]);
    by_lost[r.stats.causes[i]] = estimate(r.stats.lost_hours_by_cause[i]);
  }
  j["interruptions_by_cause"] = by_count;
  j["lost_hours_by_cause"] = by_lost;
  j["checkpoint_hours"] = estimate(r.stats.checkpoint_hours);
  j["degraded_hours"] = estimate(r.stats.degraded_hours);
  j["waiting_hours"] = estimate(r.stats.waiting_hours);
  j["checkpoint_bytes"] = r.shards.total.value();
  j["checkpoint_write_s"] = r.model.write.value();
  j["checkpoint_read_s"] = r.model.reload.value();
  j["young_interval_s"] = r.young.value();
  j["daly_interval_s"] = r.daly.value();
  j["mtbi_s"] = r.mtbi.value();
  if (!r.blast.empty()) j["blast_radius"] = blast_json(r.blast);
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(j));
  if (!f.common.hdf5.empty()) {
    report::Hdf5File h5;
    describe(h5, f.scenario, f.common);
    nlohmann::json summary = j;
    summary.erase("interruptions_by_cause");  // tables below
    summary.erase("lost_hours_by_cause");
    summary.erase("blast_radius");
    h5.attributes("/summary", summary);
    h5.table("/reliability", cause_table(r.stats));
    std::vector<double> interval, goodput;
    for (const auto& [i, g] : r.searched) {
      interval.push_back(i.value());
      goodput.push_back(g);
    }
    report::Table searched;
    searched.add("interval_s", interval).add("goodput", goodput);
    h5.table("/reliability_interval_search", searched);
    if (!r.blast.empty()) h5.table("/blast_radius", blast_table(r.blast));
    files.add(f.common.hdf5, h5.bytes());
  }
  if (!f.csv.empty()) {
    std::ostringstream csv;
    csv.precision(10);
    csv << "cause,interruptions,interruptions_ci95,lost_hours,lost_hours_ci95\n";
    for (std::size_t i = 0; i < r.stats.causes.size(); ++i) {
      csv << csv_field(r.stats.causes[i]) << "," << r.stats.interruptions_by_cause[i].mean << ","
          << r.stats.interruptions_by_cause[i].ci95 << "," << r.stats.lost_hours_by_cause[i].mean << ","
          << r.stats.lost_hours_by_cause[i].ci95 << "\n";
    }
    files.add(f.csv, csv.str());
  }
  if (!f.common.quiet && f.common.json != "-") {
    const auto& m = r.model;
    std::ostringstream deg;
    for (std::size_t k = 1; k < m.degraded_rate.size(); ++k) {
      deg << (k > 1 ? ", " : "") << k << ": x" << format_number(1.0 / m.degraded_rate[k], 4);
    }
    std::cout << "wallsim reliability: " << (s.name.empty() ? f.scenario : s.name) << ", " << plan.gpus() << " x "
              << s.cluster.gpu.name << ", " << r.stats.trials << " trials (seed " << f.common.seed << "), network "
              << network->name() << "\n"
              << key_value_table({
                     {"step time", to_string(r.step.step_time) + " healthy; with failed fabric cables " +
                                       (deg.str().empty() ? "n/a" : deg.str())},
                     {"work", format_number(m.work.value() / 86400.0, 4) + " days at the healthy step time"},
                     {"checkpoint", to_string(r.shards.total) + " (" + to_string(r.shards.per_writer) + " from each of " +
                                        std::to_string(r.shards.writers.size()) + " GPUs); write " + to_string(m.write) +
                                        ", read " + to_string(m.reload) +
                                        (m.async ? ", async: snapshot " + to_string(m.snapshot) + ", steps x" +
                                                       format_number(m.async_slowdown, 4) + " while writing"
                                                 : ", sync")},
                     {"interruptions", "one every " + to_string(r.mtbi) + " on average (all causes)"},
                     {"interval", to_string(r.stats.interval) + (r.interval_searched ? " (best by search)" : " (given)") +
                                      "; Young " + to_string(r.young) + ", Daly " + to_string(r.daly)},
                     {"days", pm(r.stats.days)},
                     {"interruptions", pm(r.stats.interruptions)},
                     {"goodput", pm(r.stats.goodput)},
                     {"checkpoint overhead", pm(r.stats.checkpoint_hours) + " h"},
                     {"degraded fabric", pm(r.stats.degraded_hours) + " h"},
                     {"waiting for repairs", pm(r.stats.waiting_hours) + " h"},
                 });
    char line[256];
    std::snprintf(line, sizeof line, "  %-24s %22s %22s\n", "cause", "interruptions", "lost hours");
    std::cout << line;
    for (std::size_t i = 0; i < r.stats.causes.size(); ++i) {
      std::snprintf(line, sizeof line, "  %-24s %22s %22s\n", r.stats.causes[i].c_str(),
                    pm(r.stats.interruptions_by_cause[i]).c_str(), pm(r.stats.lost_hours_by_cause[i]).c_str());
      std::cout << line;
    }
    if (!r.blast.empty()) std::cout << "blast radius (all-reduce of 256 MiB over the survivors among the first 512 endpoints):\n" << blast_text(r.blast);
  }
  files.write_all();
}

}  // namespace

nlohmann::json run_json(const failures::ReliabilityResult& r) {
  return {{"days", r.stats.days.mean},
          {"interruptions", r.stats.interruptions.mean},
          {"goodput", r.stats.goodput.mean},
          {"checkpoint_interval_s", r.stats.interval.value()}};
}

void register_reliability(CLI::App& app, Action& action) {
  auto f = std::make_shared<ReliabilityFlags>();
  CLI::App* cmd = app.add_subcommand("reliability", "Failures and checkpoints over a whole run: goodput, best interval");
  cmd->add_option("SCENARIO", f->scenario, "Scenario YAML file with a run: section");
  cmd->add_option("--trials", f->trials, "Monte Carlo trials (default 1000)");
  cmd->add_option("--network", f->network, "analytic or flow (default flow)");
  cmd->add_option("--engine", f->engine,
                  "events (default: the event engine, whose steps run an asynchronous checkpoint write's flows "
                  "beside the step's on the shared fabric) or composed (each collective costed alone, the write's "
                  "average bandwidth reserved on its links)");
  cmd->add_option("--blast-radius", f->blast_topology, "Only the blast radius of TOPOLOGY (a spec or scenario)");
  cmd->add_flag("--no-blast-radius", f->no_blast, "Skip the blast-radius table");
  add_output_option(*cmd, "--csv", f->csv, "Write interruptions and lost hours by cause as CSV to FILE");
  add_common_flags(*cmd, f->common);
  add_hdf5_flag(*cmd, f->common);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
