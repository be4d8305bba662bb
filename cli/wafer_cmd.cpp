// `wallsim wafer SCENARIO.yaml`: the wafer's mesh under the PLMR lens — its collectives along
// rows and columns (closed forms), and distributed GEMM by SUMMA, Cannon and MeshGEMM with
// their grid, time, SRAM and routing needs.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "report/tables.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"
#include "wafer/gemm.hpp"

namespace wallsim::cli {
namespace {

struct WaferFlags {
  CommonFlags common;
  std::string scenario, bytes = "1 MiB", gemm = "2048,4096,8192", network = "analytic";
  int tile = 1;
};

/// The collectives' schedules timed by the flow model on the mesh at the flags' granularity
/// (a single-wafer wafer-mesh topology): the check of the closed forms at full size, and
/// where tiles pay: a core-level 2-D all-reduce on a whole wafer is hundreds of thousands of
/// flows per step.
nlohmann::json flow_times(const wafer::MeshSpec& m, Bytes size, int chunks, std::string& text) {
  const auto start = std::chrono::steady_clock::now();
  const topology::Topology t = wafer::mesh_topology(m);
  const double row = wafer::flow_time(m, t, wafer::row_allreduce_schedule(m, m.x, size)).value();
  const double bcast = wafer::flow_time(m, t, wafer::row_broadcast_schedule(m, m.x, size, chunks)).value();
  const double all = wafer::flow_time(m, t, wafer::allreduce_2d_schedule(m, size)).value();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  text += key_value_table({{"flow model", "row all-reduce " + to_string(Seconds::of(row)) + ", row broadcast " +
                                              to_string(Seconds::of(bcast)) + ", 2-D all-reduce " +
                                              to_string(Seconds::of(all)) + " (simulated in " +
                                              format_number(took, 3) + " s on " + std::to_string(m.units()) +
                                              " units)"}});
  return {{"row_allreduce_s", row}, {"row_broadcast_s", bcast}, {"allreduce_2d_s", all}, {"wall_s", took}};
}

void run(const WaferFlags& f) {
  const Presets presets(default_data_dir());
  const Scenario s = load_scenario(f.scenario, f.common.sets, presets);
  wafer::MeshSpec m = wafer::mesh_of(s.cluster);
  if (f.tile > 1) m = wafer::coarsen(m, f.tile);
  const Bytes size = parse<Bytes>(f.bytes, "--bytes", true);
  std::vector<long long> sizes;
  for (const auto& v : split(f.gemm, ',')) {
    const double x = parse_count(std::string(trim_blanks(v)), "--gemm");
    if (!(x >= 1) || x != static_cast<double>(static_cast<long long>(x))) throw Error("--gemm", "'" + v + "' is not a matrix size");
    sizes.push_back(static_cast<long long>(x));
  }
  int chunks = 1;
  const Seconds row = wafer::row_allreduce(m, m.x, size);
  const Seconds bcast = wafer::row_broadcast(m, m.x, size, &chunks);
  const Seconds all = wafer::allreduce_2d(m, size);
  nlohmann::json j = {{"mesh",
                       {{"gpu", m.name}, {"x", m.x}, {"y", m.y}, {"tile", m.tile}, {"link_Bps", m.link.value()},
                        {"hop_s", m.hop.value()}, {"overhead_s", m.overhead.value()},
                        {"routing_entries", m.routing_entries}, {"sram_bytes", m.sram.value()},
                        {"flops", m.flops.value()}}},
                      {"collectives",
                       {{"bytes_per_core", size.value()},
                        {"row_allreduce_s", row.value()},
                        {"row_broadcast_s", bcast.value()},
                        {"row_broadcast_chunks", chunks},
                        {"allreduce_2d_s", all.value()}}}};
  if (f.network != "analytic" && f.network != "flow") throw Error("--network", "'" + f.network + "' is not analytic or flow");
  std::ostringstream text;
  text << "wallsim wafer: " << (s.name.empty() ? f.scenario : s.name) << ", " << m.name << " mesh " << m.x << "x"
       << m.y << (m.tile > 1 ? " tiles of " + std::to_string(m.tile) + "x" + std::to_string(m.tile) + " cores" : " cores")
       << "\n"
       << key_value_table({
              {"link", to_string(m.link) + " per direction, " + to_string(m.hop) + " per hop, " +
                           to_string(m.overhead) + " per message"},
              {"per core", to_string(m.sram) + " SRAM, " + to_string(m.flops) + ", " +
                               (m.routing_entries > 0 ? std::to_string(m.routing_entries) + " routes per router"
                                                      : std::string("routes not limited"))},
              {"row all-reduce", to_string(row) + " (" + to_string(size) + " per core, folded ring over " +
                                     std::to_string(m.x) + ")"},
              {"row broadcast", to_string(bcast) + " (pipelined in " + std::to_string(chunks) + " chunks)"},
              {"2-D all-reduce", to_string(all)},
          });
  if (f.network == "flow") {
    std::string flow_text;
    j["collectives_flow"] = flow_times(m, size, chunks, flow_text);
    text << flow_text;
  }
  char line[256];
  std::snprintf(line, sizeof line, "%7s  %-9s %6s %6s %11s %9s %7s %7s %10s  %s\n", "GEMM n", "algorithm", "grid",
                "block", "time", "TFLOP/s", "comm", "routes", "SRAM/core", "");
  text << line;
  nlohmann::json rows = nlohmann::json::array();
  for (long long n : sizes) {
    for (auto a : wafer::gemm_algos()) {
      const auto r = wafer::gemm(m, a, n);
      if (r.valid) {
        std::snprintf(line, sizeof line, "%7lld  %-9s %6d %6lld %11s %9.3g %6.1f%% %7d %10s\n", n,
                      wafer::to_string(a).c_str(), r.grid, r.block, to_string(r.time).c_str(), r.tflops,
                      100.0 * r.comm.value() / r.time.value(), r.routes, to_string(r.sram_per_core).c_str());
      } else {
        std::snprintf(line, sizeof line, "%7lld  %-9s invalid: %s\n", n, wafer::to_string(a).c_str(), r.why.c_str());
      }
      text << line;
      rows.push_back({{"n", n}, {"algo", wafer::to_string(a)}, {"valid", r.valid}, {"why", r.why}, {"grid", r.grid},
                      {"block", r.block}, {"time_s", r.time.value()}, {"tflops", r.tflops},
                      {"comm_s", r.comm.value()}, {"hop_latency_s", r.hop_latency.value()}, {"routes", r.routes},
                      {"sram_bytes", r.sram_per_core.value()}});
    }
  }
  j["gemm"] = rows;
  PendingFiles files;
  if (!f.common.json.empty()) files.add(f.common.json, report::json_text(j));
  if (!f.common.quiet && f.common.json != "-") std::cout << text.str();
  files.write_all();
}

}  // namespace

void register_wafer(CLI::App& app, Action& action) {
  auto f = std::make_shared<WaferFlags>();
  CLI::App* cmd = app.add_subcommand("wafer", "A wafer-scale mesh: collectives and GEMM algorithms under PLMR limits");
  cmd->add_option("SCENARIO", f->scenario, "Scenario YAML file with a wafer-scale cluster")->required();
  cmd->add_option("--tile", f->tile, "Coarsen the mesh into KxK-core tiles (default 1: cores)");
  cmd->add_option("--bytes", f->bytes, "Bytes per core for the collectives (default 1 MiB)");
  cmd->add_option("--gemm", f->gemm, "Square GEMM sizes, comma-separated (default 2048,4096,8192)");
  cmd->add_option("--network", f->network, "flow: also simulate the collectives on the mesh (default analytic)");
  add_common_flags(*cmd, f->common);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
