// Training steps on wafer-scale clusters (weight streaming); see wafer_step.cpp.
#pragma once

#include "engine/step.hpp"

namespace wallsim::engine {

/// Whether the cluster's "GPU" is a wafer of cores.
bool is_wafer(const ClusterSpec& c);
/// On-wafer memory of the weight-streaming plan `p`; `gpu_model` gives the activations.
Memory wafer_memory(const Scenario& sc, const parallelism::Plan& p, const Memory& gpu_model);
/// The step, every wafer a data-parallel replica fed by its I/O link.
StepResult simulate_wafer_step(const Scenario& sc, const parallelism::Plan& p, const StepOptions& o);

}  // namespace wallsim::engine
