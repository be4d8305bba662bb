// Blast radius: what one failure takes down. For one component of each kind in the fabric
// (an endpoint, a switch of each tier, a cable of each link class), the endpoints it cuts off
// from the rest, the endpoints a job loses with it (a scale-up domain goes whole: a GPU takes
// its node, an NVL72 GPU its rack), and how much slower an all-reduce over the survivors runs
// on the damaged fabric than on the healthy one (survivors among the first 512 endpoints, the
// region of the failed parts).
#pragma once

#include <string>
#include <vector>

#include "collectives/network_model.hpp"
#include "topology/graph.hpp"

namespace wallsim::failures {

struct BlastRow {
  std::string component;   ///< "endpoint", "leaf switch", "scale-out cable", ...
  std::string example;     ///< the one failed, by name
  std::size_t cut_off = 0;     ///< endpoints that can no longer reach the rest (failed ones included)
  std::size_t job_loses = 0;   ///< whole scale-up domains of those
  double allreduce_slowdown = 1.0;  ///< time on the damaged fabric over the healthy one
  std::size_t allreduce_ranks = 0;  ///< survivors in the all-reduce
};

/// One row per component kind; the all-reduce moves `bytes` under `net` (the tuner's choice).
std::vector<BlastRow> blast_radius(const topology::Topology& t, const collectives::NetworkModel& net, Bytes bytes);

}  // namespace wallsim::failures
