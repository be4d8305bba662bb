// A wafer-scale engine as a 2-D mesh of cores (or of k x k tiles of cores), with the PLMR
// properties WaferLLM (He et al., OSDI'25) names: Parallelism (hundreds of thousands of
// cores), Latency (a cost per hop, so distance matters), Memory (tens of kB of SRAM per
// core), Routing (a few routes per router). Collectives along rows and columns in closed
// form, and the same collectives as flow schedules on the wafer-mesh topology (so the flow
// model checks the closed forms).
//
// Closed forms, for B the link bandwidth per direction, h the latency of one hop and a the
// software cost of one message (all per tile when coarsened):
//   row all-reduce over n cores (folded ring: the ring 0,2,4,...,5,3,1 is embedded so every
//   ring edge is at most 2 hops and every directed link carries one message per step):
//     T = 2(n-1) (a + 2h + S/(nB))           (n >= 3; n = 2: 2 (a + h + S/(2B)))
//   pipelined broadcast from the end of a row of n cores, S in m chunks:
//     T(m) = (n - 2 + m)(a + h + S/(mB)),     m chosen to minimise T
//   2-D all-reduce on X x Y (reduce-scatter along rows, all-reduce along columns of the
//   1/X chunk, all-gather along rows):
//     T = 2(X-1)(a + 2h + S/(XB)) + 2(Y-1)(a + 2h + S/(XYB))
// Coarsening k x k cores into a tile: the tile's k rows (columns) run k parallel collectives
// over k parallel links, so a tile holds k S, its link carries k B and a tile hop is k core
// hops (a tile step stands for k core steps: a becomes k a). A collective along a dimension
// of n cores then takes (n-k)/(n-1) of the core-level time: coarsening underestimates by
// (k-1)/(n-1) at most (the steps inside a tile), e.g. 0.9 % for k = 8 on a 750-core row.
#pragma once

#include <string>
#include <vector>

#include "collectives/schedule.hpp"
#include "core/scenario.hpp"
#include "core/units.hpp"

namespace wallsim::wafer {

struct MeshSpec {
  std::string name;
  int x = 0, y = 0;   ///< cores (tiles) per row, rows
  int tile = 1;       ///< cores per tile side (1: core granularity)
  Bandwidth link;     ///< per direction between neighbours
  Seconds hop;        ///< latency of one hop
  Seconds overhead;   ///< software cost of one message step
  int routing_entries = 0;  ///< routes one router holds (0 = not limited)
  Bytes sram;         ///< per core (tile)
  FlopRate flops;     ///< per core (tile)
  [[nodiscard]] long long units() const { return static_cast<long long>(x) * y; }
};

/// The mesh of one wafer of a wafer-scale cluster: dims from cluster.scale_out.dims, the
/// on-wafer link from cluster.scale_up, SRAM, routing entries and compute from the GPU entry
/// (compute: the wafer's peak over its cores). An Error naming the key when one is missing.
MeshSpec mesh_of(const ClusterSpec& c);

/// The mesh at k x k tile granularity (see above); an Error when k does not divide both dims.
MeshSpec coarsen(const MeshSpec& m, int k);

/// Closed forms (S = bytes per core; the mesh's tile holds tile x S).
Seconds row_allreduce(const MeshSpec& m, int n, Bytes s);
Seconds row_broadcast(const MeshSpec& m, int n, Bytes s, int* chunks = nullptr);
Seconds allreduce_2d(const MeshSpec& m, Bytes s);

/// The same collectives as flow schedules over the endpoints of a single-wafer wafer-mesh
/// topology of the mesh's dims (endpoint = row * x + column): row 0 (n units), or every row
/// and column for the 2-D all-reduce. Timed with the flow model and the mesh's overhead they
/// give the closed forms.
collectives::Schedule row_allreduce_schedule(const MeshSpec& m, int n, Bytes s);
collectives::Schedule row_broadcast_schedule(const MeshSpec& m, int n, Bytes s, int chunks);
collectives::Schedule allreduce_2d_schedule(const MeshSpec& m, Bytes s);

/// The mesh as a single-wafer wafer-mesh topology (endpoint = row * x + column).
topology::Topology mesh_topology(const MeshSpec& m);
/// `s` timed by the flow model on `t` (mesh_topology(m)), with the mesh's per-message cost.
Seconds flow_time(const MeshSpec& m, const topology::Topology& t, const collectives::Schedule& s);

/// The folded ring order of a line of n: 0, 2, 4, ..., then the odd positions descending.
std::vector<int> folded_ring(int n);

}  // namespace wallsim::wafer
