// From what a user writes to a built Topology: spec strings (`fat-tree:k=4,bandwidth=400 Gb/s`,
// SPEC.md's TOPOLOGY table), mappings with a `topology:` key, and a scenario's `cluster:`.
#pragma once

#include <string>

#include "core/config.hpp"
#include "core/presets.hpp"
#include "core/scenario.hpp"
#include "topology/graph.hpp"

namespace wallsim::topology {

/// The kinds a spec string may name.
const std::vector<std::string>& topology_kinds();

/// `KIND:key=value,...` as a mapping {topology: KIND, key: value, ...}.
YAML::Node spec_to_yaml(const std::string& spec);

/// Builds a family from a mapping with a `topology:` key (errors name `c.path()` keys).
Topology build_from_config(const Config& c);

/// Builds the fabric of a scenario's cluster (rail-optimized Clos, or wafer-scale mesh).
/// `part`: one MPI rank's share of the links (Clos; other families are built whole).
Topology build_cluster(const ClusterSpec& cluster, Part part = {});

/// The fabric a training step uses: build_cluster's for GPU clusters; for wafer-scale clusters
/// the wafers (one endpoint each) on their I/O links to one switch (SwarmX) — the on-wafer
/// mesh is the wafer module's (wafer/mesh.hpp), not millions of graph nodes.
Topology build_step_fabric(const ClusterSpec& c, Part part = {});

/// TOPOLOGY argument of the CLI: a scenario file (its cluster) or a spec string.
Topology build_topology_argument(const std::string& arg, const std::vector<std::string>& overrides,
                                 const Presets& presets);

}  // namespace wallsim::topology
