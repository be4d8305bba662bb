// A whole run with failures and checkpoints, from a scenario: the step simulator gives the
// healthy step time, the step time on fabrics with 1..3 failed scale-out cables, and the step
// time while an asynchronous checkpoint write shares the fabric; the flow model gives the
// checkpoint write and read times; the failure rates of run.failures are scaled to the job;
// then the Monte Carlo runs at the given interval or at the best one found by search.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "engine/step.hpp"
#include "failures/blast_radius.hpp"
#include "failures/checkpoint.hpp"
#include "failures/monte_carlo.hpp"

namespace wallsim::failures {

struct ReliabilityOptions {
  const collectives::NetworkModel* network = nullptr;
  int trials = 1000;
  std::uint64_t seed = 1;
  int search_trials = 400;  ///< trials per candidate interval of the search (common random numbers)
  bool blast_radius = true;
  std::function<void(double)> progress;  ///< optional: told the fraction of the trials done
  /// The event engine for the steps (healthy, during an asynchronous write, degraded): the
  /// write's flows then run beside the step's on the shared fabric (joint max-min) instead of
  /// reserving their average bandwidth on each link through the step.
  bool events = false;
  Watts power_cap;  ///< the steps' cap (--power-cap); 0 = the scenario's cluster.power_cap or TDP
  /// The healthy step when the caller has it, simulated with the same engine, network and cap
  /// (`run` passes its own); null = simulated here.
  const engine::StepResult* healthy = nullptr;
};

struct ReliabilityResult {
  engine::StepResult step;
  RunModel model;
  CheckpointShards shards;
  Seconds mtbi;                 ///< mean time between interruptions, all causes
  Seconds young, daly;          ///< closed-form intervals for the checkpoint overhead
  bool interval_searched = false;
  std::vector<std::pair<Seconds, double>> searched;  ///< (interval, mean goodput) tried
  RunStats stats;               ///< at the chosen interval, `trials` trials
  std::vector<BlastRow> blast;
};

/// Needs s.run with failures; an Error naming the key otherwise.
ReliabilityResult analyze_run(const Scenario& s, const parallelism::Plan& p, const topology::Topology& t,
                              const ReliabilityOptions& o);

/// A uniform index in [0, n) from `rng`, the same on every standard library (unlike
/// std::uniform_int_distribution, whose algorithm each library picks): Lemire's multiply-shift
/// with rejection (ACM TOMACS 2019, "Fast Random Integer Generation in an Interval"): the high
/// 64 bits of x * n for a 64-bit draw x, redrawn while the low 64 bits fall below 2^64 mod n
/// (so that every index has exactly floor(2^64 / n) draws behind it). n must be at least 1.
std::size_t uniform_index(std::mt19937_64& rng, std::size_t n);

/// An Error naming --trials unless 1 <= trials <= limits::kMaxTrials.
void check_trials(long long trials);

/// The model's failure causes scaled to a job of `gpus` GPUs in nodes of `gpus_per_node`.
std::vector<Cause> scale_causes(const FailureSpec& f, long long gpus, int gpus_per_node);

}  // namespace wallsim::failures
