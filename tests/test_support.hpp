// Helpers shared by the tests: the repository's presets and paths.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sys/wait.h>
#include <sstream>
#include <string>

#include "core/presets.hpp"

namespace wallsim::test {

inline const Presets& presets() {
  static const Presets p(std::string(WALLSIM_SOURCE_DIR) + "/data");
  return p;
}

inline std::string source_path(const std::string& rel) {
  return std::string(WALLSIM_SOURCE_DIR) + "/" + rel;
}

/// The whole content of a file ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// What a run of the wallsim binary gave: its exit code (-1 when killed), stdout and stderr.
struct CliResult {
  int code = -1;
  std::string out, err;
};

/// Runs a shell command whose stdout and stderr go to the files `out` and `err`, and reads them.
inline CliResult run_captured(const std::string& command, const std::string& out, const std::string& err) {
  const std::string cmd = command + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace wallsim::test
