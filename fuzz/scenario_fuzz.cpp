// Any scenario text: a Scenario or a wallsim::Error; no other exception, no crash.
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "core/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const wallsim::Presets presets(std::string(WALLSIM_SOURCE_DIR) + "/data");
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)wallsim::parse_scenario(text, "fuzz.yaml", {}, presets);
  } catch (const wallsim::Error&) {
  }
  return 0;
}
