// Training steps on wafer-scale clusters (weight streaming); see wafer_step.cpp.
#pragma once

#include <string>

#include "engine/step.hpp"

namespace wallsim::engine {

/// Whether the cluster's "GPU" is a wafer of cores.
bool is_wafer(const ClusterSpec& c);
/// On-wafer memory of the weight-streaming plan `p`; `gpu_model` gives the activations.
Memory wafer_memory(const Scenario& sc, const parallelism::Plan& p, const Memory& gpu_model);
/// The wafer step has one model: closed forms on the mesh and each system's own I/O link (no
/// link is shared, so there is nothing for the flow model to add). An Error naming `path` when
/// a given `network` asks for `flow` on a wafer-scale cluster.
void check_wafer_network(const ClusterSpec& c, const std::string& network, const std::string& path);
/// The step, every wafer a data-parallel replica fed by its I/O link. A power cap is an Error
/// (the wafers have no DVFS model: hardware::check_power_cap).
StepResult simulate_wafer_step(const Scenario& sc, const parallelism::Plan& p, const StepOptions& o);

}  // namespace wallsim::engine
