// Topology families: each a function from a params struct to a Topology (STYLE rule 9:
// builders apart from models). Endpoints are numbered in the family's natural order.
#pragma once

#include <string>
#include <vector>

#include "topology/graph.hpp"

namespace wallsim::topology {

/// One link class as a builder uses it: per-direction bandwidth, latency, energy per bit.
struct LinkParams {
  Bandwidth bandwidth{};
  Seconds latency{};
  EnergyPerBit energy{};
};

/// n endpoints in a bidirectional ring; endpoints forward (a ring of GPUs or TPUs).
struct RingParams {
  int n = 0;
  LinkParams link{};
};
/// n endpoints on one switch.
struct SwitchParams {
  int n = 0;
  LinkParams link{};
  Seconds switch_latency{};
};
/// n endpoints with a direct cable between every pair.
struct FullyConnectedParams {
  int n = 0;
  LinkParams link{};
};
/// Folded Clos of radix-k switches (Al-Fares et al., SIGCOMM 2008). With `endpoints` = 0 it
/// is the k-ary three-level fat-tree: k pods of k/2 edge and k/2 aggregation switches,
/// (k/2)^2 cores, k^3/4 endpoints. `levels` 2 is a leaf-spine of k/2 spines (up to k^2/2
/// endpoints). `oversubscription` o divides the bandwidth of every edge uplink by o.
struct FatTreeParams {
  int k = 0;
  long long endpoints = 0;  ///< 0: all k^3/4 (3 levels) or k^2/2 (2 levels)
  int levels = 3;
  double oversubscription = 1.0;
  LinkParams link{};
  Seconds switch_latency{};
};
/// Rail-optimized GPU cluster: scale-up domains (NVSwitch / NVL72) of `domain` GPUs, and a
/// leaf-spine scale-out where leaf (group, rail r) connects GPU r of `nodes_per_leaf` nodes.
struct ClosParams {
  long long nodes = 0;
  int gpus_per_node = 8;
  int domain = 0;  ///< GPUs per scale-up domain; 0 = gpus_per_node
  int nodes_per_leaf = 0;
  int spines = 0;  ///< 0 = nodes_per_leaf (non-blocking when links match)
  LinkParams scale_up{};
  LinkParams scale_out{};
  double switch_reduction = 0.0;  ///< scale-up switch reduces in-network (NVLS); 0 = no
  Seconds switch_latency{};
  Bandwidth storage{};  ///< aggregate storage bandwidth; 0 = no storage node
  int storage_nodes = 1;
};
/// Dragonfly (Kim et al., ISCA 2008): g groups of a routers, p endpoints per router, h global
/// links per router; routers in a group fully connected; global links in the palm-tree
/// arrangement, floor(a*h/(g-1)) links between every pair of groups.
struct DragonflyParams {
  int p = 0, a = 0, h = 0, g = 0;
  std::string routing = "minimal";  ///< minimal, valiant or ugal
  LinkParams terminal{}, local{}, global{};
  Seconds switch_latency{};
};
/// k-dimensional torus (wrap) or mesh of router-endpoints; dimension 0 varies fastest.
struct TorusParams {
  std::vector<int> dims{};
  bool wrap = true;
  LinkParams link{};
};
/// Wafer-scale engine: an x-by-y mesh of cores per wafer (dimension-order routing); several
/// wafers join through each wafer's west-edge I/O to one switch over inter-wafer links.
struct WaferMeshParams {
  int x = 0, y = 0;
  int wafers = 1;
  LinkParams link{};        ///< per hop on the wafer
  LinkParams inter_wafer{}; ///< wafer I/O to the switch
  Bytes sram{};             ///< per core
};

Topology build_ring(const RingParams& p);
Topology build_switch(const SwitchParams& p);
Topology build_fully_connected(const FullyConnectedParams& p);
Topology build_fat_tree(const FatTreeParams& p);
/// `part` (one MPI rank's share): only the cables of its GPUs, their NVSwitches and leaves.
Topology build_clos(const ClosParams& p, Part part = {});
Topology build_dragonfly(const DragonflyParams& p);
Topology build_torus(const TorusParams& p);
Topology build_wafer_mesh(const WaferMeshParams& p);

/// Throws wallsim::Error naming `key` when `nodes` exceeds kMaxNodes or `cables` kMaxCables
/// (graph.hpp); builders call it with their counts before adding anything.
void check_size(const std::string& key, long double nodes, long double cables = 0);

/// A Link from builder params.
Link make_link(const LinkParams& p, LinkClass cls);

/// A GPU cluster on any scale-out fabric: `fabric`'s endpoints are the GPUs (their scale-out
/// NICs); every `domain` consecutive GPUs also share a scale-up switch (NVSwitch) over
/// `scale_up` links. Routes inside a domain go through its switch; the others are the fabric's
/// own routes. The result's kind is the fabric's, with domain_size set.
Topology with_scale_up(Topology fabric, int domain, const LinkParams& scale_up, double switch_reduction);

}  // namespace wallsim::topology
