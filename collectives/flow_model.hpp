// Flow-level network model (the reference semantics of SPEC.md): a flow first waits the sum
// of its path's latencies, then moves its bytes at its max-min fair share of every link on
// its path; shares are recomputed whenever any flow starts moving or ends. Links are full
// duplex, so only flows in the same direction share a link. `simulate_flows` runs a fixed set
// of flows through the incremental solver (flow_solver.hpp), which says why it is fast.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "topology/graph.hpp"

namespace wallsim::collectives {

/// The one relative tolerance shared by the solver and its tests (SimGrid's
/// sg_precision_workamount plays this role): residues below it are snapped to zero, events
/// closer than it (relative to the clock) are one event, and a rate that moves by less keeps
/// its flows' projected finishes. At 1e-9 (its value until issue 19) finish times strayed up
/// to 1.05e-9 from SimGrid's on 100k flows; at 1e-11 they agree within 2e-15, at the same speed.
constexpr double kRelativePrecision = 1e-11;

struct Flow {
  /// Directed link ids; empty = a local copy (finishes at start). A link named k times carries
  /// the flow k times over (the copies of one transfer on their several routes, at one rate).
  topology::Path path;
  Bytes bytes;
  Seconds start;
  double multiplicity = 1.0;  ///< identical flows on the same path
  /// Moves after this latency (set for copies on several routes: one route's), else the path's.
  std::optional<Seconds> latency = std::nullopt;
  /// Empty, or by position in `path`: how many times the flow crosses that link (whole
  /// numbers of at least 1; a latency must be given). Many transfers' routes in one flow stay
  /// as long as the links they cross, not as the sum of their routes.
  std::vector<std::uint32_t> times = {};
};

/// The other ranks of a flow simulation partitioned over MPI ranks (engine/distribute.hpp
/// implements it with MPI): each rank holds the flows it starts; event times are global
/// minima and every progressive-filling round combines the per-link weight sums of the links
/// more than one rank's flows cross. Weights are whole numbers, so those sums are exact in
/// any order and every rank count gives the same rates to the last bit.
class FlowExchange {
 public:
  virtual ~FlowExchange() = default;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int ranks() const = 0;
  /// The minimum of `x` over every rank.
  [[nodiscard]] virtual double min(double x) const = 0;
  /// Element-wise sum over every rank, in place.
  virtual void sum(std::span<double> v) const = 0;
  /// The links (sorted, unique) that the flows of more than one rank cross, the same list on
  /// every rank; `mine` is this rank's links, sorted and unique.
  [[nodiscard]] virtual std::vector<topology::LinkId> shared_links(std::span<const topology::LinkId> mine) const = 0;
};

struct FlowStats {
  std::size_t events = 0;          ///< start/end batches processed
  std::size_t rate_updates = 0;    ///< flow rates (re)computed
  std::size_t links_visited = 0;   ///< links in the recomputed components, summed
};

/// Finish time of every flow (same order as `flows`), from the topology's link bandwidths
/// and latencies. Flows with zero bytes finish when their latency has elapsed. A flow of
/// infinite bytes is background load (a long checkpoint write): it takes its max-min share
/// while the others run and its finish time is infinite; the simulation ends with the others.
/// `reserved_Bps` (by link id, optional) is bandwidth taken by traffic outside `flows`: the
/// flows share what is left of each link. `progress`, when given, is told the fraction of
/// the flows finished every 1,024 events. With `exchange`, `flows` are this rank's share of
/// a simulation partitioned over ranks (every rank calls together); the results are those of
/// one process holding every flow. Multiplicities must be whole numbers.
std::vector<Seconds> simulate_flows(const topology::Topology& t, const std::vector<Flow>& flows,
                                    FlowStats* stats = nullptr, std::span<const double> reserved_Bps = {},
                                    const std::function<void(double)>& progress = {},
                                    const FlowExchange* exchange = nullptr);

}  // namespace wallsim::collectives
