// Size and shape of a fabric: counts, hop diameter and mean, bisection bandwidth, path
// diversity. On a fabric that failures have cut apart, the hop metrics are over the pairs
// that can still reach each other and the pairs that cannot are counted apart (a pair with a
// failed endpoint cannot). Hop metrics run one BFS (with shortest-path counting) per endpoint orbit when the
// family declares its symmetry, from every endpoint on small fabrics, and from a fixed sample
// otherwise (then the metric is flagged as estimated). Torus and mesh hop metrics use their
// exact per-dimension closed form. Bisection is the family's closed form, or a Boost max-flow
// min-cut between the two halves of the endpoints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "topology/graph.hpp"

namespace wallsim::topology {

struct Metrics {
  std::size_t endpoints = 0, switches = 0, storage = 0, links = 0;  ///< links are directed
  int diameter_hops = 0;          ///< over the reachable pairs
  double avg_hops = 0.0;          ///< over reachable ordered pairs of distinct endpoints
  double path_diversity = 0.0;    ///< mean number of equal-cost shortest paths per reachable pair
  double unreachable_pairs = 0.0; ///< ordered pairs of distinct endpoints with no surviving path
  std::optional<Bandwidth> bisection;  ///< one direction; nullopt when too large to compute
  std::string bisection_method;   ///< "closed form", "max-flow" or "not computed"
  std::vector<std::string> estimated;  ///< names of metrics computed from a sample
};

/// Path counts above this are clipped, so that meshes of a million cores stay finite.
constexpr double kPathCountCap = 1e15;

struct MetricsOptions {
  std::size_t exact_sources_limit = 4096;  ///< BFS from all endpoints up to this many
  std::size_t sample_sources = 64;
  std::size_t sample_visits = 50'000'000;  ///< BFS work budget when sampling
  std::size_t maxflow_node_limit = 300000;
};

Metrics compute_metrics(const Topology& t, const MetricsOptions& opt = {});

/// Max-flow from the endpoints with side[i] == 0 to those with side[i] == 1 (one direction),
/// with links as arcs of their bandwidth. Exposed for tests.
Bandwidth max_flow_cut(const Topology& t, const std::vector<std::uint8_t>& side);

}  // namespace wallsim::topology
