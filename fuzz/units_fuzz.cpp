// Any text: a finite non-negative value or a wallsim::Error naming the path; nothing else.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.hpp"
#include "core/units.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (int d = 0; d <= static_cast<int>(wallsim::Dimension::kCount); ++d) {
    try {
      const double v = wallsim::parse_quantity(text, static_cast<wallsim::Dimension>(d), "fuzz");
      if (!std::isfinite(v) || v < 0.0) std::abort();
    } catch (const wallsim::Error& e) {
      if (std::string(e.what()).rfind("fuzz: ", 0) != 0) std::abort();
    }
  }
  return 0;
}
