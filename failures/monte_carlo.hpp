// Monte Carlo of a whole training run with failures and checkpoints. Each trial walks wall
// time in checkpoint cycles: run for the interval, then checkpoint (sync: training stalls for
// the write; async: it stalls for the snapshot to host memory and runs slower while the write
// drains). A failure stops the job: the work since the last durable checkpoint is lost, then
// detection + restart + checkpoint read; a failure during that recovery starts it again
// (Daly's model, so the exponential case has his closed form). Failed GPUs, nodes and NICs
// take their node out until repaired: a spare replaces it, or the job waits for a repair.
// Failed cables are rerouted: the job runs at the degraded step time until the repair (a
// rate change takes effect at the next checkpoint boundary).
//
// Lifetimes: a cause with Weibull shape k != 1 has a pool of identical units, all new at the
// start, whose first failure is drawn by inverting the pool's survival [S(t')/S(t)]^m; a
// repaired unit is new again and draws its own lifetime. Shape 1 is a Poisson process.
// Every trial has its own random stream (seed, trial): results do not depend on how trials
// are split across ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/units.hpp"

namespace wallsim::failures {

/// One root cause, scaled to the simulated job.
struct Cause {
  std::string name;
  std::string component;  ///< gpu, node, nic, link, software, planned
  double units = 1.0;     ///< units of the job the rate counts per (GPUs, nodes, or 1)
  Frequency rate;         ///< per unit
  Seconds repair;
  double weibull_shape = 1.0;
};

struct RunModel {
  Seconds work;  ///< the run's compute time on a healthy cluster (tokens / tokens per second)
  std::vector<Cause> causes;
  Seconds detection, restart, reload;
  Seconds write;     ///< checkpoint write (sync: a stall; async: drains while training runs)
  Seconds snapshot;  ///< async: the stall to copy the state to host memory
  bool async = false;
  double async_slowdown = 1.0;  ///< step time while an async write drains, over the healthy one
  /// Step-time ratio (healthy over degraded) with j failed cables, j = 0, 1, ...; [0] = 1.
  /// More failed cables than entries use the last.
  std::vector<double> degraded_rate{1.0};
  int spare_nodes = 0;
};

/// Mean and 95 % confidence half-width over trials.
struct Estimate {
  double mean = 0.0, ci95 = 0.0;
};

struct RunStats {
  int trials = 0;
  Seconds interval;
  Estimate days, interruptions, goodput;   ///< goodput: work / wall time
  Estimate checkpoint_hours;               ///< stalls and async slowdown
  Estimate degraded_hours;                 ///< extra time from running on a degraded fabric
  Estimate waiting_hours;                  ///< waiting for repairs (no spare)
  std::vector<std::string> causes;
  std::vector<Estimate> interruptions_by_cause, lost_hours_by_cause;  ///< lost: work + recovery
};

/// `trials` trials with checkpoints every `interval` of running time (at least the write).
RunStats simulate_run(const RunModel& m, Seconds interval, int trials, std::uint64_t seed);

/// The first trial's stream, for tests of the lifetime sampling: `n` units of Weibull shape
/// k and scale eta, none repaired; the failure times in [0, horizon).
std::vector<double> weibull_pool_failures(double n, double shape, Seconds eta, Seconds horizon,
                                          std::uint64_t seed);

/// Young's interval sqrt(2 delta M) and Daly's higher-order one (Daly 2006, eq. 37), for a
/// checkpoint cost delta and mean time between interruptions M.
Seconds young_interval(Seconds delta, Seconds mtbi);
Seconds daly_interval(Seconds delta, Seconds mtbi);
/// Daly's expected wall time of `segments` compute segments of tau, each followed by a
/// checkpoint of delta except the last, with restart cost R, under exponential failures.
Seconds daly_expected_wall(Seconds tau, Seconds delta, Seconds restart, Seconds mtbi, int segments);

}  // namespace wallsim::failures
