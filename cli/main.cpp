// wallsim: simulator of distributed LLM training clusters. Exit codes: 0 success, 2 bad
// input (the message names the key or line, and is found before any output is written), 1 an
// output that could not be written (a full disk, a closed standard output) or an internal error.
#include <cstdlib>
#include <iostream>
#include <streambuf>
#include <stdexcept>
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "core/io.hpp"
#include "core/error.hpp"
#include "engine/distribute.hpp"

namespace {

/// A rank that fails ends the whole job with its message (no other rank is left waiting).
/// Bad input fails every rank alike: rank 0 says so once, and the others, which would say the
/// same, give it time to end the job first (15 s: on a loaded machine rank 0 can reach the
/// error seconds after the others, and 3 s once let another rank speak and end the job first);
/// a rank that fails alone still speaks.
int fail(const wallsim::engine::World& world, const std::string& what, int code, bool every_rank_alike = false) {
  if (world.size() > 1 && every_rank_alike && !world.root()) std::this_thread::sleep_for(std::chrono::seconds(15));
  // One write: std::cerr is unbuffered, and under mpirun another process's output could land
  // between the pieces of a line written piece by piece.
  const std::string line = "wallsim: " +
                           (world.size() > 1 && !(every_rank_alike && world.root()) ? "rank " + std::to_string(world.rank()) + ": " : "") +
                           what + "\n";
  std::cerr << line << std::flush;
  if (world.size() > 1) world.abort(code);
  return code;
}

/// Fault injection for the MPI tests: WALLSIM_FAIL_RANK=N makes rank N fail once it runs.
void maybe_fail_for_test(const wallsim::engine::World& world) {
  if (const char* r = std::getenv("WALLSIM_FAIL_RANK"); r != nullptr && world.size() > 1 && std::atoi(r) == world.rank()) {
    throw std::runtime_error("failing as WALLSIM_FAIL_RANK asks");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const wallsim::engine::World world(&argc, &argv);
  // Rank 0 alone prints and writes (files: PendingFiles); the others compute silently.
  struct Discard : std::streambuf {
    int overflow(int c) override { return c; }
  };
  static auto* const discard = new Discard;  // outlives std::cout's last flush at exit
  if (!world.root()) std::cout.rdbuf(discard);
  CLI::App app{"wallsim: simulate distributed LLM training on GPU and wafer-scale clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "wallsim 0.1.0");
  wallsim::cli::set_command_line(argc, argv);
  wallsim::cli::Action action;
  wallsim::cli::register_topo(app, action);
  wallsim::cli::register_presets(app, action);
  wallsim::cli::register_flows(app, action);
  wallsim::cli::register_collective(app, action);
  wallsim::cli::register_run(app, action);
  wallsim::cli::register_search(app, action);
  wallsim::cli::register_validate(app, action);
  wallsim::cli::register_reliability(app, action);
  wallsim::cli::register_sweep(app, action);
  wallsim::cli::register_wafer(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(world, std::string("error: ") + e.what(), 2, true);
  }
  try {
    wallsim::cli::check_outputs(app);
  } catch (const wallsim::Error& e) {
    return fail(world, std::string("error: ") + e.what(), 2, true);
  }
  try {
    maybe_fail_for_test(world);
    if (action) action();
    wallsim::flush_stdout();
    return 0;
  } catch (const wallsim::Error& e) {
    return fail(world, std::string("error: ") + e.what(), 2, true);
  } catch (const wallsim::OutputError& e) {
    return fail(world, std::string("error: ") + e.what(), 1);
  } catch (const std::exception& e) {
    return fail(world, std::string("internal error: ") + e.what(), 1);
  }
}
