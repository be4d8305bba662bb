// Checkpoint traffic. A Megatron-style checkpoint holds the bf16 weights and the optimizer's
// fp32 main weights and Adam moments: 2 + 12 bytes per parameter (14 TB for a 1T model;
// Narayanan et al. 2021 report 13.8 TB). With the distributed optimizer (ZeRO >= 1) every GPU
// writes its own shard (Megatron's fully parallel save); without it, the first data-parallel
// replica writes everything. A write is one flow per writing GPU to a storage node (round
// robin) on the same fabric as the gradients; a read is the reverse.
#pragma once

#include <vector>

#include "collectives/flow_model.hpp"
#include "core/scenario.hpp"
#include "parallelism/plan.hpp"
#include "topology/graph.hpp"

namespace wallsim::failures {

struct CheckpointShards {
  Bytes total;                              ///< the whole checkpoint
  Bytes per_writer;                         ///< each writing GPU's shard
  std::vector<topology::NodeId> writers;    ///< GPUs that write (and later read) a shard
};

/// Bytes per parameter in a checkpoint: the bf16 weights and the optimizer's master weights and
/// moments (Adam with fp32 ones: 2 + 12).
double checkpoint_bytes_per_param(const parallelism::Plan& p);
CheckpointShards checkpoint_shards(const Scenario& s, const parallelism::Plan& p);

/// The flows of a write (`read` = false: GPU to storage) or a read, all starting at 0. An
/// Error naming cluster.storage when the fabric has no storage nodes.
std::vector<collectives::Flow> checkpoint_flows(const topology::Topology& t, const CheckpointShards& c,
                                                bool read);
/// The time until the last of `flows` ends (flow model).
Seconds makespan(const topology::Topology& t, const std::vector<collectives::Flow>& flows);
Seconds makespan(const std::vector<Seconds>& finish);
/// Bandwidth per link that an asynchronous write (`flows`, started together) takes from the
/// training traffic: each flow's bytes over its finish time on every link of its path, at most
/// half of a link (max-min gives a write flow and a training flow that both want more than
/// half a link one half each).
/// `finish`: the flows' finish times (simulate_flows).
std::vector<double> average_load(const topology::Topology& t, const std::vector<collectives::Flow>& flows,
                                 const std::vector<Seconds>& finish);

}  // namespace wallsim::failures
