// Exports of a built fabric: the links CSV of SPEC.md (one row per directed link), GraphML
// and Graphviz DOT (written by Boost.Graph's own writers), and the metrics as JSON.
#pragma once

#include <iosfwd>

#include <nlohmann/json.hpp>

#include "topology/graph.hpp"
#include "topology/metrics.hpp"

namespace wallsim::topology {

/// `id,from,to,bandwidth_Bps,latency_s`, from/to as node names.
void write_links_csv(const Topology& t, std::ostream& out);
void write_graphml(const Topology& t, std::ostream& out);
void write_dot(const Topology& t, std::ostream& out);
/// The `topo` JSON keys of SPEC.md.
nlohmann::json metrics_json(const Topology& t, const Metrics& m);

/// Shortest decimal text that reads back to the same double ("%.17g", trimmed).
std::string exact_number(double x);

}  // namespace wallsim::topology
