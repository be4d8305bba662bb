// Any spec string with small numbers: a Topology (whose routes are valid) or a wallsim::Error.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "topology/spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 512) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Keep fabrics small: skip inputs with a run of more than three digits, or a number with a
  // count multiplier (4M nodes is a valid, huge fabric: building it is not parsing).
  int run = 0;
  for (char c : text) {
    if (run > 0 && std::strchr("kKMBT", c) != nullptr && c != '\0') return 0;
    run = std::isdigit(static_cast<unsigned char>(c)) ? run + 1 : 0;
    if (run > 3) return 0;
  }
  try {
    const YAML::Node y = wallsim::topology::spec_to_yaml(text);
    const auto t = wallsim::topology::build_from_config(
        wallsim::Config(y, y["topology"].as<std::string>()));
    if (t.num_endpoints() > 20000) return 0;
    for (wallsim::topology::NodeId s = 0; s < t.num_endpoints() && s < 8; ++s) {
      const auto d = static_cast<wallsim::topology::NodeId>(t.num_endpoints() - 1 - s);
      wallsim::topology::NodeId at = s;
      for (auto l : t.route(s, d, s)) {
        if (t.link_source(l) != at) std::abort();
        at = t.link_target(l);
      }
      if (at != d) std::abort();
    }
  } catch (const wallsim::Error&) {
  }
  return 0;
}
