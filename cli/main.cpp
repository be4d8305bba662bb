// wallsim: simulator of distributed LLM training clusters. Exit codes: 0 success, 2 bad
// input (the message names the key or line), 1 internal error.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "wallsim: error: " << e.what() << "\n";
    return 2;
  }
  try {
    if (action) action();
    return 0;
  } catch (const wallsim::Error& e) {
    std::cerr << "wallsim: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "wallsim: internal error: " << e.what() << "\n";
    return 1;
  }
}
