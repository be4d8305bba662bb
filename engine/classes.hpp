// Rank classes: the ranks of a step program that run the same ops, over the same route costs,
// beside peers of the same classes, so that simulating one of them stands for all (the event
// engine, simulate.hpp). Symmetry is decided, not assumed: classes are the coarsest partition
// that colour refinement (Weisfeiler-Lehman) reaches from the ranks' programs and GPU speeds,
// where a rank's colour takes in each of its groups (its members' colours in order and the
// route costs between them) and each of its point-to-point peers (colour and route cost each
// way). A failed cable or switch (its routes cost more), a slow GPU or an asymmetric fabric
// splits the classes where it acts, and the ranks whose groups hold the split ranks split after
// them. Under the flow model the links the ranks' connections share refine them further, so
// that ECMP's uneven hashing splits them too (Contention). Groups whose members' classes and
// route costs agree position by position are copies of
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

#include "collectives/flow_model.hpp"
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
  /// Whether the classes took in the links the connections share (see Contention), so that
  /// one rank per class gives every rank's step under the flow model too.
  bool exact = true;
  [[nodiscard]] std::size_t count() const { return rep.size(); }
};

/// Every rank its own class, every group its own group class (the engine then simulates every
/// rank, as it does to check the classes).
RankClasses every_rank(const parallelism::Program& p);

/// Under the flow model, the traffic whose sharing of links the classes must respect.
struct Contention {
  bool on = false;                         ///< the flow model: links are shared at max-min rates
  std::uint32_t flows_per_connection = 1;  ///< routes a connection between domains takes
  std::span<const double> reserved_Bps;    ///< bandwidth taken on links by outside traffic
  std::span<const collectives::Flow> background;  ///< flows beside the step (a checkpoint write)
  /// The links are taken in while the ranks left to simulate hold at most this many ops, or 4
  /// times what the classes by costs alone hold; past that the classes by costs stand, with
  /// RankClasses::exact false.
  std::size_t max_ops = 1'000'000;
};

/// The classes of `p` on `t`; `speed` (by rank, optional) is each rank's compute speed (a slow
/// GPU's below 1). Under `contention.on` the refinement also takes in the links the ranks'
/// connections between domains share (and, with a reserve, inside them): a link's colour is its
/// free bandwidth and the colours of the connections that cross it, a connection's its kind and
/// its ends' colours, a rank's its connections' links' colours; so two ranks whose transfers
/// ECMP hashed onto links shared differently are told apart. The connections are the pairs the
/// route costs compare (above) and the pipeline peers: the classes are equitable over those,
/// and so exact wherever a collective's transfers are among them (every pair of a group of up
/// to 64; above, each member's ring neighbours and the member half-way round).
RankClasses classify(const parallelism::Program& p, const topology::Topology& t, std::span<const double> speed = {},
                     const Contention& contention = {});

/// The route key of a transfer from `src` to `dst` (GPUs) in group `group` (a collective) or
/// between two ranks (kP2p): a connection keeps its route for the step, as NCCL's do.
inline constexpr std::uint32_t kP2pKey = ~std::uint32_t{0};
std::uint64_t route_key(std::uint32_t group, topology::NodeId src, topology::NodeId dst);

}  // namespace wallsim::engine
