// The CLI's subcommands. Each registers its flags on the app and returns the action to run
// once parsing succeeded; the CLI is glue: parse flags, call the library, print, write.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace wallsim::topology {
class Topology;
}
namespace wallsim::failures {
struct ReliabilityResult;
}
namespace wallsim::engine {
struct StepResult;
}
namespace wallsim::report {
class Hdf5File;
}

namespace wallsim::cli {

using Action = std::function<void()>;

/// Flags every subcommand shares (SPEC.md "Common flags").
struct CommonFlags {
  std::vector<std::string> sets;
  std::string json;
  bool quiet = false;
  bool progress = false;  ///< --progress: draw the progress bar even when stderr is not a terminal
  unsigned long long seed = 0;
  std::string hdf5;  ///< --hdf5 FILE, on the subcommands that have it (add_hdf5_flag)
};

void add_common_flags(CLI::App& cmd, CommonFlags& flags);
/// A flag's check: a whole number from `min` to `max`, written in digits (CLI11 alone wraps "-1").
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max);
void add_hdf5_flag(CLI::App& cmd, CommonFlags& flags);

/// The command line wallsim was started with (main sets it), for the files' provenance.
void set_command_line(int argc, char** argv);

/// Root attributes of an --hdf5 file saying what produced it: wallsim's version, the command
/// line, the seed, the --set overrides, and `input` (a scenario file, whose text is stored, or
/// a topology spec string).
void describe(report::Hdf5File& f, const std::string& input, const CommonFlags& common);

/// Cables and nodes to fail before a command uses the fabric (--fail-link, --fail-node).
struct FailureFlags {
  std::vector<std::string> links, nodes;
};

void add_failure_flags(CLI::App& cmd, FailureFlags& flags);

/// Fails the cable of `link`: a link id, FROM-TO node names (leaf0-spine3), or "none";
/// an Error naming `path` when there is no such link.
void fail_link(topology::Topology& t, const std::string& link, const std::string& path);

/// Builds TOPOLOGY (a scenario file or a spec string) with the --set overrides and the failures.
topology::Topology build_fabric(const std::string& topology, const CommonFlags& common,
                                const FailureFlags& failures);

void register_topo(CLI::App& app, Action& action);
void register_presets(CLI::App& app, Action& action);
void register_flows(CLI::App& app, Action& action);
void register_collective(CLI::App& app, Action& action);
void register_run(CLI::App& app, Action& action);
void register_search(CLI::App& app, Action& action);
void register_validate(CLI::App& app, Action& action);
void register_reliability(CLI::App& app, Action& action);
void register_sweep(CLI::App& app, Action& action);
void register_wafer(CLI::App& app, Action& action);

/// SPEC's JSON summary of one step (`run --json`).
nlohmann::json step_summary_json(const engine::StepResult& r);

/// SPEC's `run` keys of a whole-run result (days, interruptions, goodput, checkpoint_interval_s).
nlohmann::json run_json(const failures::ReliabilityResult& r);

}  // namespace wallsim::cli
