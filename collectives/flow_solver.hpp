// The incremental flow-level solver: the one the step engine drives and `simulate_flows`
// loops over. Flows are added at any time (alone or as a group of identical flows), the clock
// is advanced event by event, flows can be cancelled and links can lose bandwidth to traffic
// outside the solver; the semantics are SPEC.md's (latency first, then max-min fair shares).
//
// Why it is fast. Rates are max-min fair shares computed by progressive filling, and a change
// (a flow starts or ends, a link's reserved bandwidth moves) only reaches the flows above it in
// the bottleneck structure: filling is identical below the lowest level the change touches,
// and a class of flows whose rate comes out unchanged passes nothing on. So each event refills
// only the "dirty" links: those the change touches, and those of every class whose rate turns
// out different, as the refill discovers them in level order. Classes that sit on a dirty link
// but are bottlenecked elsewhere keep their old rate unless the refill proves otherwise (a
// check at their old level). Flows on one path form one class (weights are whole numbers), so
// a collective's many equal sends are one unit of the solve. Each event costs the degree of the
// dirty links (classes on them) times a log, not the size of the congested component.
//
// Exact. Every number equals what a full progressive filling of all active flows computes, to
// the last bit: a dirty link's fill state is rebuilt with the same operations, in the same
// order (one subtraction per distinct level below, snapped with the one precision), as the
// full filling would have applied. Partitioned over ranks (FlowExchange), every event refills
// every link in rounds combined across ranks, which gives the same numbers again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "collectives/flow_model.hpp"

namespace wallsim::collectives {

class FlowSolver {
 public:
  using Id = std::uint32_t;

  /// `reserved_Bps` (by link id, optional): bandwidth taken from the start by traffic outside
  /// the solver. With `exchange`, every rank holds its own flows and calls every member except
  /// `add`, `cancel`, `reserve` and the queries together, in the same order.
  explicit FlowSolver(const topology::Topology& t, std::span<const double> reserved_Bps = {},
                      const FlowExchange* exchange = nullptr);
  ~FlowSolver();
  FlowSolver(FlowSolver&&) noexcept;
  FlowSolver& operator=(FlowSolver&&) noexcept;

  /// Adds `f` (start at or after now()); it moves after its path's latency. Ids count up from
  /// 0 in the order flows are added, but for released ones, reused last released first. Multiplicities must be whole numbers.
  Id add(const Flow& f);
  /// The caller is done with finished flow `id` (its finish time read): a later add() may
  /// reuse its id and record, so that a long simulation holds only the flows in flight.
  void release(Id id);
  /// Stops a flow that has not finished; its remaining bytes are dropped.
  void cancel(Id id);
  /// From now on, `taken` of link `l`'s bandwidth belongs to traffic outside the solver.
  void reserve(topology::LinkId l, Bandwidth taken);

  /// The time of the next event (a flow starts to move or finishes, a change waits), +inf if
  /// none. With an exchange, the earliest over every rank.
  [[nodiscard]] Seconds next_event();
  /// Runs every event up to and including `t` and moves the clock to `t` (when finite);
  /// returns the flows that finished, in the order they were processed (valid until the next
  /// call).
  std::span<const Id> advance_to(Seconds t);
  /// Runs the next event (every flow starting or finishing at that time); false if none is left.
  bool step();
  /// The flows that finished in the last `step` or `advance_to`, in the order processed.
  [[nodiscard]] std::span<const Id> finished() const;

  [[nodiscard]] Seconds now() const;
  /// A finished flow's finish time; +inf for one that has not finished (or was cancelled).
  [[nodiscard]] Seconds finish(Id id) const;
  /// A flow's bytes left (at now()); 0 once finished.
  [[nodiscard]] Bytes remaining(Id id) const;
  /// Flows added and neither finished nor cancelled.
  [[nodiscard]] std::size_t unfinished() const;
  [[nodiscard]] const FlowStats& stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallsim::collectives
