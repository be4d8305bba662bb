// `wallsim flows TOPOLOGY --flows FILE.csv`: replay explicit flows on the flow-level model.
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "cli/progress.hpp"
#include "collectives/flow_io.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/presets.hpp"
#include "topology/spec.hpp"

#include <nlohmann/json.hpp>

namespace wallsim::cli {
namespace {

struct FlowsFlags {
  CommonFlags common;
  FailureFlags failures;
  std::string topology, flows, out;
};

/// The largest flow list read: about 25 million flows at ~40 bytes a row.
constexpr std::size_t kMaxFlowsFileBytes = std::size_t{1} << 30;

void run(const FlowsFlags& f) {
  if (f.out.empty() && f.common.json == "-") {
    throw Error("--json", "standard output already takes the flows CSV; give --out FILE or --json FILE");
  }
  const topology::Topology t = build_fabric(f.topology, f.common, f.failures);
  const auto rows = collectives::parse_flows_csv(read_text_file(f.flows, kMaxFlowsFileBytes), f.flows, t);
  const auto flows = collectives::route_flows(t, rows);
  collectives::FlowStats stats;
  ProgressBar bar("flows", f.common);
  const auto finish = collectives::simulate_flows(t, flows, &stats, {}, [&bar](double d) { bar.update(d); });
  bar.update(1.0);
  std::ostringstream csv;
  collectives::write_flows_csv(csv, rows, flows, finish);
  double makespan = 0.0;
  for (const auto& s : finish) makespan = std::max(makespan, s.value());
  nlohmann::json j = {{"flows", rows.size()}, {"makespan_s", makespan}, {"events", stats.events}};
  PendingFiles files;
  files.add(f.out.empty() ? "-" : f.out, csv.str());
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(j));
  if (!f.common.quiet && !f.out.empty() && f.common.json != "-") {
    std::cout << key_value_table({{"flows", std::to_string(rows.size())},
                                  {"makespan", to_string(Seconds::of(makespan))},
                                  {"events", std::to_string(stats.events)}});
  }
  files.write_all();
}

}  // namespace

void register_flows(CLI::App& app, Action& action) {
  auto f = std::make_shared<FlowsFlags>();
  CLI::App* cmd = app.add_subcommand("flows", "Replay explicit flows on the flow-level (max-min) model");
  cmd->add_option("TOPOLOGY", f->topology, "A scenario file or a spec string")->required();
  cmd->add_option("--flows", f->flows, "CSV with id,src,dst,bytes,start_s")->required();
  add_output_option(*cmd, "--out", f->out, "Write id,...,finish_s,links here (default: standard output)");
  add_common_flags(*cmd, f->common);
  add_failure_flags(*cmd, f->failures);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
