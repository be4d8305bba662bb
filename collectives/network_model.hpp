// Network models behind one small interface (NVI, picked by name as SimGrid's
// lmm::System::build): `analytic` (alpha-beta, no contention between messages) and `flow`
// (max-min fair sharing of every link, flow_model.hpp). Both time a set of schedules run in
// lockstep: step i of every schedule together, so that collectives sharing links slow each
// other down under `flow` and do not under `analytic`.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "collectives/flow_model.hpp"
#include "collectives/schedule.hpp"

namespace wallsim::collectives {

struct CostParams {
  Seconds overhead;  ///< software overhead per message, added to every step's messages
  /// Bandwidth taken on each link (by link id; empty = none) by long-running traffic present
  /// during every step, such as a checkpoint write: `flow` gives the schedules what is left;
  /// `analytic` has no contention and ignores it.
  std::span<const double> reserved_Bps;
  /// A step partitioned over MPI ranks (`flow` only): the schedules given are this rank's
  /// share, positions `schedule_offset`... of the whole set, every schedule of the set with
  /// the same phases (steps, repeats, transfers per step); each rank times its flows and the
  /// exchange combines them. Null = one process holds every schedule.
  const FlowExchange* exchange = nullptr;
  std::size_t schedule_offset = 0;
  /// `flow`: flows each transfer is cut into, each hashed onto its own equal-cost route with
  /// its share of the bytes (cluster.scale_out.flows_per_connection; the steps that go by pair
  /// class already spread every pair's bytes evenly over its equal-cost paths).
  std::uint32_t flows_per_connection = 1;
  /// Told the fraction of the steps timed so far (`flow`, after each step; optional).
  std::function<void(double)> progress;
};

class NetworkModel {
 public:
  virtual ~NetworkModel() = default;
  /// Time to run `schedules` together on `t`.
  [[nodiscard]] Seconds time(const topology::Topology& t, std::span<const Schedule> schedules,
                             const CostParams& p) const {
    return do_time(t, schedules, p);
  }
  [[nodiscard]] Seconds time(const topology::Topology& t, const Schedule& s, const CostParams& p) const {
    return do_time(t, std::span<const Schedule>(&s, 1), p);
  }
  [[nodiscard]] std::string name() const { return do_name(); }
  /// "analytic" or "flow"; an Error naming `path` otherwise.
  static std::unique_ptr<NetworkModel> build(const std::string& name, const std::string& path);

 private:
  virtual Seconds do_time(const topology::Topology& t, std::span<const Schedule> schedules,
                          const CostParams& p) const = 0;
  [[nodiscard]] virtual std::string do_name() const = 0;
};

/// Adds to `bytes_by_link` (indexed by link id, sized to the topology's links) the bytes each
/// link carries when `schedules` run together, every transfer routed as the flow model routes it.
/// The route key of flow j of a transfer cut into several (flows_per_connection): flow 0 keeps
/// the transfer's own key, the others mix j in.
std::uint64_t flow_key(std::uint64_t key, std::uint32_t j);

/// `flows_per_connection` as CostParams has it.
void add_link_bytes(const topology::Topology& t, std::span<const Schedule> schedules, std::vector<double>& bytes_by_link,
                    std::uint32_t flows_per_connection = 1);

/// The fastest valid algorithm for the case under `model` (as NCCL's tuner picks the fastest
/// by its cost model): candidates are ranked by the analytic model and timed under `model`
/// fastest-first until the analytic bound of the next cannot beat the best found. `forced`
/// restricts the choice to one algorithm. An Error when none fits.
struct Choice {
  Schedule schedule;
  Seconds time;
};
Choice choose_schedule(const topology::Topology& t, Op op, const std::vector<topology::NodeId>& group,
                       Bytes size, const CollectiveOptions& opt, const CostParams& p,
                       std::optional<Algo> forced, const NetworkModel& model);

}  // namespace wallsim::collectives
