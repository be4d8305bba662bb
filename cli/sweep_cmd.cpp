// `wallsim sweep SCENARIO.yaml --vary KEY=V1,V2,... [--vary ...]`: the scenario re-run over
// the cartesian product of the varied keys (the interconnect-wall study). Values are lists or
// ranges: `100Gb/s:1600Gb/s:x2` multiplies, `1:8:+1` adds. A point whose plan is invalid or
// does not fit is a row that says so; a key or value the scenario rejects is bad input.
// Two keys are not scenario keys: `power_cap` (each GPU's cap, as run --power-cap) and
// `fail_link` (a cable failed before the step: a link id, FROM-TO node names, or none).
#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "report/hdf5.hpp"
#include "report/svg.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"
#include "engine/distribute.hpp"
#include "engine/step.hpp"
#include "engine/wafer_step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/plan.hpp"
#include "topology/spec.hpp"

namespace wallsim::cli {
namespace {

struct SweepFlags {
  CommonFlags common;
  std::string scenario, network = "analytic", csv, svg, metric = "step_time_s", engine = "events";
  std::vector<std::string> vary;
  CLI::Option* network_flag = nullptr;  ///< to tell a --network given from the default
};

struct Axis {
  std::string key;
  std::vector<std::string> values;
};

/// "100Gb/s" -> (100, "Gb/s").
std::pair<double, std::string> split_number(const std::string& text, const std::string& path) {
  std::size_t used = 0;
  double x = 0.0;
  try {
    x = std::stod(text, &used);
  } catch (const std::exception&) {
    throw Error(path, "'" + text + "' does not start with a number");
  }
  return {x, std::string(trim_blanks(text.substr(used)))};
}

/// The values of a range `FROM:TO:xF` or `FROM:TO:+S` (units of FROM), or a comma list.
std::vector<std::string> expand(const std::string& spec, const std::string& path) {
  const auto parts = split(spec, ':');
  if (parts.size() != 3) {
    std::vector<std::string> out;
    for (const auto& v : split(spec, ',')) {
      const std::string t(trim_blanks(v));
      if (t.empty()) throw Error(path, "has an empty value in '" + spec + "'");
      out.push_back(t);
    }
    return out;
  }
  const auto [from, unit] = split_number(std::string(trim_blanks(parts[0])), path);
  const auto [to, unit_to] = split_number(std::string(trim_blanks(parts[1])), path);
  if (unit_to != unit) throw Error(path, "the range ends in '" + unit_to + "' but starts in '" + unit + "'");
  const std::string step(trim_blanks(parts[2]));
  if (step.size() < 2 || (step[0] != 'x' && step[0] != '+')) {
    throw Error(path, "the step '" + step + "' is not xFACTOR or +INCREMENT");
  }
  const double by = split_number(step.substr(1), path).first;
  const bool grows = step[0] == 'x' ? by > 1.0 : by > 0.0;
  if (!grows || !(to >= from)) {
    throw Error(path, "the range " + spec + " does not grow from its start to its end");
  }
  std::vector<std::string> out;
  for (double v = from; v <= to * (1.0 + 1e-12); v = step[0] == 'x' ? v * by : v + by) {
    if (out.size() >= 1000) throw Error(path, "a range of more than 1,000 values");
    out.push_back(format_number(v, 6) + (unit.empty() ? "" : " " + unit));
  }
  return out;
}

Axis parse_vary(const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) throw Error("--vary", "'" + arg + "' is not KEY=V1,V2,... or KEY=FROM:TO:xF");
  Axis a{std::string(trim_blanks(arg.substr(0, eq))), expand(arg.substr(eq + 1), "--vary " + arg.substr(0, eq))};
  if (a.values.empty()) throw Error("--vary " + a.key, "has no values");
  return a;
}

/// A number for the x axis: the value in SI units when it parses as one, else its index.
double numeric(const std::string& v, double index) {
  for (Dimension d : {Dimension::kBandwidth, Dimension::kSeconds, Dimension::kBytes, Dimension::kWatts,
                      Dimension::kFlopRate, Dimension::kEnergyPerBit, Dimension::kFrequency}) {
    try {
      return parse_quantity(v, d, "", false);
    } catch (const Error&) {
    }
  }
  try {
    return parse_count(v, "");
  } catch (const Error&) {
    return index;
  }
}

struct Point {
  std::vector<std::string> values;
  std::optional<engine::StepResult> result;
  std::string why;  ///< when there is no result
};

void run(const SweepFlags& f) {
  if (f.vary.empty()) throw Error("--vary", "missing: give at least one KEY=V1,V2,...");
  std::vector<Axis> axes;
  for (const auto& v : f.vary) axes.push_back(parse_vary(v));
  const auto& metrics = report::step_metric_names();
  if (std::find(metrics.begin(), metrics.end(), f.metric) == metrics.end()) {
    throw Error("--metric", "unknown metric '" + f.metric + "'" + did_you_mean(f.metric, metrics) + "; one of " +
                                join(metrics, ", "));
  }
  std::size_t count = 1;
  for (const auto& a : axes) {
    count *= a.values.size();
    if (count > 100000) throw Error("--vary", "more than 100,000 points");
  }
  if (f.engine != "composed" && f.engine != "events") throw Error("--engine", "'" + f.engine + "' is not one of composed, events");
  const Presets presets(default_data_dir());
  const auto network = collectives::NetworkModel::build(f.network, "--network");
  // Points are spread over MPI ranks (engine/distribute.hpp); each comes back as bytes.
  auto point_values = [&](std::size_t i) {
    std::vector<std::string> values(axes.size());
    std::size_t rest = i;
    for (std::size_t k = axes.size(); k-- > 0;) {  // the first axis varies slowest
      values[k] = axes[k].values[rest % axes[k].values.size()];
      rest /= axes[k].values.size();
    }
    return values;
  };
  auto simulate_point = [&](std::size_t i) {
    const std::vector<std::string> values = point_values(i);
    std::vector<std::string> sets = f.common.sets;
    Watts cap;
    bool has_cap = false;
    std::vector<std::string> failed;
    for (std::size_t k = 0; k < axes.size(); ++k) {
      if (axes[k].key == "power_cap") {
        cap = parse<Watts>(values[k], "--vary power_cap");
        has_cap = true;
      } else if (axes[k].key == "fail_link") {
        failed.push_back(values[k]);
      } else {
        sets.push_back(axes[k].key + "=" + values[k]);
      }
    }
    const Scenario s = load_scenario(f.scenario, sets, presets);  // bad keys and values: Errors
    // Physical ranges of the non-scenario keys, and a --network the wafer step does not use: Errors.
    if (has_cap) hardware::check_power_cap(s.cluster.gpu, cap, "--vary power_cap");
    if (f.network_flag != nullptr && f.network_flag->count() > 0) engine::check_wafer_network(s.cluster, f.network, "--network");
    topology::Topology t = topology::build_step_fabric(s.cluster);
    for (const auto& l : failed) fail_link(t, l, "--vary fail_link");  // a link that does not exist: an Error
    engine::Packer out;
    try {
      const auto plan = parallelism::make_plan(s);
      const auto mem = engine::memory_per_gpu(s, plan);
      if (mem.over()) return out.put(std::uint8_t{0}).put(std::string("does not fit")).take();
      const auto options = engine::step_options(network.get(), cap);
      const std::string step = engine::pack(f.engine == "events" ? engine::simulate_step_events(s, plan, t, options)
                                                                 : engine::simulate_step(s, plan, t, options));
      return out.put(std::uint8_t{1}).put(step).take();
    } catch (const Error& e) {
      return out.put(std::uint8_t{0}).put(std::string("invalid: ") + e.what()).take();
    }
  };
  ProgressBar bar("sweep", f.common);
  const auto packed = engine::distribute(count, simulate_point, 1, [&bar](double d) { bar.update(d); });
  std::vector<Point> points;
  for (std::size_t i = 0; i < count; ++i) {
    Point p;
    p.values = point_values(i);
    engine::Unpacker in(packed[i]);
    if (in.get<std::uint8_t>() == 1) {
      p.result = engine::unpack_step(in.get_string());
    } else {
      p.why = in.get_string();
    }
    points.push_back(std::move(p));
  }
  // Table, JSON, CSV.
  std::ostringstream text, csv;
  text << "wallsim sweep: " << f.scenario << ", " << points.size() << " points, network " << network->name() << "\n";
  char cell[256];
  std::vector<int> width;
  for (const auto& a : axes) {
    std::size_t w = a.key.size();
    for (const auto& v : a.values) w = std::max(w, v.size());
    width.push_back(static_cast<int>(std::min<std::size_t>(w, 60)));
    std::snprintf(cell, sizeof cell, "%-*s ", width.back(), a.key.c_str());
    text << cell;
    csv << csv_field(a.key) << ",";
  }
  std::snprintf(cell, sizeof cell, "%12s %8s %14s %14s\n", "step", "MFU", "exposed comm", "J per token");
  text << cell;
  csv << "step_time_s,mfu,exposed_comm_s,energy_per_token_j,tokens_per_s,note\n";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& p : points) {
    nlohmann::json j = p.result ? step_summary_json(*p.result) : nlohmann::json::object();
    for (std::size_t k = 0; k < axes.size(); ++k) {
      std::snprintf(cell, sizeof cell, "%-*s ", width[k], p.values[k].c_str());
      text << cell;
      csv << csv_field(p.values[k]) << ",";
      j[axes[k].key] = p.values[k];
    }
    if (p.result) {
      const auto& r = *p.result;
      std::snprintf(cell, sizeof cell, "%12s %7.2f%% %14s %14.4g\n", to_string(r.step_time).c_str(), 100.0 * r.mfu,
                    to_string(r.exposed_comm).c_str(), r.energy_per_token_j);
      text << cell;
      csv << r.step_time.value() << "," << r.mfu << "," << r.exposed_comm.value() << "," << r.energy_per_token_j << ","
          << r.tokens_per_s << ",\n";
    } else {
      text << p.why << "\n";
      csv << ",,,,," << csv_field(p.why) << "\n";
      j["note"] = p.why;
    }
    rows.push_back(j);
  }
  PendingFiles files;
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(nlohmann::json{{"points", rows}}));
  if (!f.csv.empty()) files.add(f.csv, csv.str());
  if (!f.common.hdf5.empty()) {
    report::Hdf5File h5;
    describe(h5, f.scenario, f.common);
    h5.attribute("/summary", "points", static_cast<std::int64_t>(points.size()));
    h5.attribute("/summary", "network", network->name());
    report::Table table;
    for (std::size_t k = 0; k < axes.size(); ++k) {
      std::vector<std::string> v;
      for (const auto& p : points) v.push_back(p.values[k]);
      table.add(axes[k].key, std::move(v));
    }
    std::vector<std::int64_t> ran;
    for (const auto& p : points) ran.push_back(p.result ? 1 : 0);
    table.add("ran", std::move(ran));
    for (const auto& m : metrics) {  // 0 where the point did not run (`ran` 0; its note says why)
      std::vector<double> v;
      for (const auto& p : points) v.push_back(p.result ? report::step_metric(*p.result, m) : 0.0);
      table.add(m, std::move(v));
    }
    std::vector<std::string> notes;
    for (const auto& p : points) notes.push_back(p.why);
    table.add("note", std::move(notes));
    h5.table("/sweep", table);
    files.add(f.common.hdf5, h5.bytes());
  }
  if (!f.svg.empty()) {
    // The metric against the first key, one line per value of the second (if any).
    report::LinePlot plot;
    plot.title = f.scenario + ": " + f.metric + " vs " + axes[0].key;
    plot.x_label = axes[0].key;
    plot.y_label = report::step_metric_label(f.metric);
    for (std::size_t k = 1; k < axes.size(); ++k) plot.legend_title += (k > 1 ? ", " : "") + axes[k].key;
    const std::size_t n0 = axes[0].values.size(), lines = points.size() / n0;
    for (std::size_t l = 0; l < lines; ++l) {
      report::LinePlot::Series series;
      for (std::size_t k = 1; k < axes.size(); ++k) {
        series.name += (series.name.empty() ? "" : ", ") + points[l].values[k];
      }
      for (std::size_t x = 0; x < n0; ++x) {
        const Point& p = points[x * lines + l];
        if (!p.result) continue;
        series.points.emplace_back(numeric(p.values[0], static_cast<double>(x)),
                                   report::step_metric(*p.result, f.metric));
      }
      plot.series.push_back(std::move(series));
    }
    bool all_numeric = true;
    for (std::size_t x = 0; x < n0; ++x) {
      all_numeric = all_numeric && numeric(axes[0].values[x], -1.0) != -1.0;
    }
    plot.log_x = all_numeric && n0 > 2;
    for (std::size_t x = 0; x < n0; ++x) plot.x_ticks.emplace_back(numeric(axes[0].values[x], static_cast<double>(x)), axes[0].values[x]);
    files.add(f.svg, report::render_svg(plot));
  }
  if (!f.common.quiet && f.common.json != "-") std::cout << text.str();
  files.write_all();
}

}  // namespace

void register_sweep(CLI::App& app, Action& action) {
  auto f = std::make_shared<SweepFlags>();
  CLI::App* cmd = app.add_subcommand("sweep", "Re-run a scenario over varied keys (the interconnect-wall study)");
  cmd->add_option("SCENARIO", f->scenario, "Scenario YAML file")->required();
  cmd->add_option("--vary", f->vary, "KEY=V1,V2,... or KEY=FROM:TO:xFACTOR or KEY=FROM:TO:+STEP (repeatable)");
  f->network_flag = cmd->add_option("--network", f->network, "analytic or flow (default analytic)");
  cmd->add_option("--engine", f->engine, "events (default: the event engine, as run) or composed");
  add_output_option(*cmd, "--csv", f->csv, "Write the table as CSV");
  add_output_option(*cmd, "--svg", f->svg, "Plot --metric against the first varied key");
  cmd->add_option("--metric", f->metric, "What --svg plots (default step_time_s)");
  add_common_flags(*cmd, f->common);
  add_hdf5_flag(*cmd, f->common);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
