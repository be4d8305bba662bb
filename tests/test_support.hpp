// Helpers shared by the tests: the repository's presets and paths.
#pragma once

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

}  // namespace wallsim::test
