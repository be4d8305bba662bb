// Rank classes: the ranks of a step program that run the same ops, over the same route costs,
// beside peers of the same classes, so that simulating one of them stands for all (the event
// engine, simulate.hpp). Symmetry is decided, not assumed: classes are the coarsest partition
// that colour refinement (Weisfeiler-Lehman) reaches from the ranks' programs and GPU speeds,
// where a rank's colour takes in each of its groups (its members' colours in order and the
// route costs between them) and each of its point-to-point peers (colour and route cost each
// way). A failed cable or switch (its routes cost more), a slow GPU or an asymmetric fabric
// splits the classes where it acts, and the ranks whose groups hold the split ranks split after
// them. Groups whose members' classes and route costs agree position by position are copies of
// one group class; the engine runs one collective per group class and puts every copy's
// transfers on the fabric as one weighted flow each (collectives/flow_solver.hpp).
//
// Route costs compared: every ordered pair of members for groups of up to 64 (every pair an
// all-to-all or a tree can use), each member's ring neighbours and the member half-way round
// for larger groups (the pairs rings and halving-doubling use).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "parallelism/program.hpp"
#include "topology/graph.hpp"

namespace wallsim::engine {

struct RankClasses {
  std::vector<std::uint32_t> of;       ///< by rank: its class
  std::vector<std::uint32_t> rep;      ///< by class: the rank simulated for it (its lowest)
  std::vector<std::uint32_t> size;     ///< by class: its ranks
  std::vector<std::uint32_t> group_rep;  ///< by group: the first group of its group class
  /// By group: the groups of its group class, in order (filled for group classes' first groups).
  std::vector<std::vector<std::uint32_t>> copies;
  [[nodiscard]] std::size_t count() const { return rep.size(); }
};

/// Every rank its own class, every group its own group class (the engine then simulates every
/// rank, as it does to check the classes).
RankClasses every_rank(const parallelism::Program& p);

/// The classes of `p` on `t`; `speed` (by rank, optional) is each rank's compute speed (a slow
/// GPU's below 1).
RankClasses classify(const parallelism::Program& p, const topology::Topology& t, std::span<const double> speed = {});

/// The route key of a transfer from `src` to `dst` (GPUs) in group `group` (a collective) or
/// between two ranks (kP2p): a connection keeps its route for the step, as NCCL's do.
inline constexpr std::uint32_t kP2pKey = ~std::uint32_t{0};
std::uint64_t route_key(std::uint32_t group, topology::NodeId src, topology::NodeId dst);

}  // namespace wallsim::engine
