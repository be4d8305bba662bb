// Rank layout: plan coordinates (tp, cp, dp, pp) <-> global rank, in the plan's order
// (Megatron's tp fastest, then cp, dp, pp by default). Rank r runs on endpoint r, so with tp
// fastest a TP group is consecutive GPUs and stays inside a node's scale-up domain when it fits.
// Expert layers fold the stage's tp x cp x dp ranks (flattened tp fastest) into etp x ep x
// expert-dp, etp fastest, as Megatron's MoE parallel folding does; with etp = tp this is EP
// carved out of cp x dp.
#pragma once

#include <vector>

#include "parallelism/plan.hpp"
#include "topology/graph.hpp"

namespace wallsim::parallelism {

struct Coords {
  int tp = 0, cp = 0, dp = 0, pp = 0;
};

/// kDpShard: the data x context ranks of one hybrid-sharding group (kDpCp when not hybrid);
/// kDpReplicate: the ranks at the same place of every shard group. kExpertDpShard and
/// kExpertDpReplicate split the expert-data-parallel group alike: into dp / dp_shard
/// consecutive parts, and the members at the same place of each.
enum class GroupKind { kTp, kCp, kDp, kDpCp, kEp, kExpertDp, kDpShard, kDpReplicate, kExpertDpShard, kExpertDpReplicate };

long long rank_of(const Plan& p, const Coords& c);
Coords coords_of(const Plan& p, long long rank);

/// The group of `kind` that contains the rank at `c`, in group-rank order.
std::vector<topology::NodeId> group_of(const Plan& p, const Coords& c, GroupKind kind);
/// Every group of `kind` among the ranks of pipeline stage `stage`.
std::vector<std::vector<topology::NodeId>> groups_in_stage(const Plan& p, int stage, GroupKind kind);

}  // namespace wallsim::parallelism
