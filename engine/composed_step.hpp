// The composed step (composed_step.cpp): each collective costed alone, then the step's tasks
// scheduled over fixed durations. simulate_step (step.hpp) runs it under the power cap.
#pragma once

#include "engine/step.hpp"

namespace wallsim::engine {

/// The composed step of `p` on `t` with the GPUs' clock set by the cap less `reserve` (see
/// within_cap).
StepResult composed_step(const Scenario& sc, const parallelism::Plan& p, const topology::Topology& t, const StepOptions& o,
                         Watts reserve);

}  // namespace wallsim::engine
