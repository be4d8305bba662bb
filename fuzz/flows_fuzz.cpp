// Any flow list: rows whose endpoints exist and whose numbers are finite and non-negative, which
// the flow model then finishes (each finish at or after its start), or a wallsim::Error.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "collectives/flow_io.hpp"
#include "collectives/flow_model.hpp"
#include "core/error.hpp"
#include "topology/spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  static const wallsim::topology::Topology t = [] {
    const YAML::Node y = wallsim::topology::spec_to_yaml("fat-tree:k=4,bandwidth=100GB/s,latency=1us");
    return wallsim::topology::build_from_config(wallsim::Config(y, "fuzz"));
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto rows = wallsim::collectives::parse_flows_csv(text, "fuzz.csv", t);
    if (rows.empty()) std::abort();  // an empty list is an Error
    for (const auto& r : rows) {
      if (r.src >= t.num_endpoints() || r.dst >= t.num_endpoints()) std::abort();
      if (!(r.bytes.value() >= 0.0) || !std::isfinite(r.bytes.value()) || !(r.start.value() >= 0.0)) std::abort();
    }
    if (rows.size() > 64) return 0;
    for (const auto& r : rows) {  // absurd sizes and times would only make the solver slow
      if (r.bytes.value() > 1e15 || r.start.value() > 1e6) return 0;
    }
    const auto flows = wallsim::collectives::route_flows(t, rows);
    const auto finish = wallsim::collectives::simulate_flows(t, flows);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (!std::isfinite(finish[i].value()) || finish[i].value() < rows[i].start.value()) std::abort();
    }
  } catch (const wallsim::Error&) {
  }
  return 0;
}
