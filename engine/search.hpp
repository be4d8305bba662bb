// Plan search: every valid plan of a scenario's model on its cluster (tp, pp, dp, cp, ep,
// vpp, micro_batch, zero, recompute, schedule), the ones that fit in memory simulated, ranked
// by step time or by energy per token. The scenario's framework settings go with each plan
// where they apply (rank order, gradient-reduce overlap and dtype, TP overlap, the selective
// recompute's modules, the MoE dispatcher for plans with expert parallelism); a plan with a
// choice only the event engine runs is simulated there, the others on the composed step.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/step.hpp"

namespace wallsim::engine {

struct SearchResult {
  std::vector<std::pair<parallelism::Plan, StepResult>> plans;  ///< best first
  std::size_t evaluated = 0;       ///< plans enumerated
  std::size_t valid = 0;           ///< passed the plan rules
  std::size_t dropped_memory = 0;  ///< valid but do not fit in memory
  /// Fit, but the event engine refused to simulate them (a step program over its op limit),
  /// and the first such refusal.
  std::size_t not_simulated = 0;
  std::string not_simulated_why;
};

/// The plans of `s` (its parallel: section is ignored; training.global_batch is kept).
/// `progress` (optional) is told the fraction of the plans that fit simulated. Under MPI the
/// steps are spread over the ranks (engine/distribute.hpp); every rank gets the whole result.
SearchResult search_plans(const Scenario& s, const topology::Topology& t, const StepOptions& o,
                          bool by_energy, const std::function<void(double)>& progress = {});

}  // namespace wallsim::engine
