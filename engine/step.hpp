// One training step, simulated. The step program of every pipeline stage (forward, backward
// and weight passes in schedule order, TP/CP/EP communication inside them, PP sends between
// stages, DP gradient buckets overlapped with the last backward, the optimizer and ZeRO's
// parameter gathers) runs as a discrete-event simulation of tasks on per-stage streams
// (compute, data-parallel communication) with dependencies and lags.
//
// Symmetry: ranks that differ only in their tp, cp or dp coordinate run the same program at
// the same times on a symmetric fabric, so one representative per pipeline stage is simulated;
// their communication is costed with every concurrent instance on the fabric (under the flow
// model, groups that leave a scale-up domain are timed together so they contend for links).
#pragma once

#include <cmath>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collectives/network_model.hpp"
#include "core/scenario.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/memory.hpp"
#include "parallelism/plan.hpp"
#include "parallelism/step_program.hpp"
#include "topology/graph.hpp"

namespace wallsim::engine {

// Weights' and gradients' bytes per parameter, stated once in parallelism/step_program.hpp
// (the optimizer's follow the plan: Plan::optimizer_bytes).
inline constexpr double kWeightBytes = parallelism::kWeightBytesPerParam, kGradBytes = parallelism::kGradBytesPerParam;

/// A slow GPU and the pipeline stage it holds (cluster.slow_gpus): its stage's peers wait for it.
struct Straggler {
  int gpu = 0, stage = 0;
  double speed = 1.0;
};

using parallelism::kAllocatorReserve;
using parallelism::kBorderlineMemory;
using parallelism::Memory;
using parallelism::StageMemory;
/// Memory per GPU (parallelism::gpu_memory; on a wafer, its cores' SRAM and the weight stream).
Memory memory_per_gpu(const Scenario& s, const parallelism::Plan& p);
/// The slow GPUs of the cluster (cluster.slow_gpus) the plan runs on, with their stages.
std::vector<Straggler> stragglers(const Scenario& s, const parallelism::Plan& p);

/// One slice of a representative rank's step, for traces: lane 0 computes, lane 1 is the
/// communication exposed inside compute tasks (TP/SP/CP/EP), lane 2 the data-parallel stream.
struct TimelineEvent {
  int stage = 0;
  int lane = 0;
  std::string name;
  Seconds start, end;
  int rank = -1;  ///< the rank it shows (the event engine: one rank of each class); -1: the stage's first
};

/// The most rank classes the event engine's timeline shows (see StepResult::timeline).
inline constexpr std::size_t kShownClasses = 64;

/// One kernel of the step on one GPU, for the roofline chart: what it computes and moves, and
/// how long it takes (forward kernels of one layer, the LM head, the optimizer).
struct OpPoint {
  std::string name;
  Flops flops;
  Bytes bytes;  ///< HBM traffic
  Seconds time;
};

/// One GPU of a pipeline stage over the step (every rank of a stage runs the same program).
struct StageTimes {
  Seconds compute;  ///< forward, backward and recompute
  Seconds comm;     ///< waiting on communication: exposed TP/SP/CP/EP and the data-parallel tail
  Seconds bubble;   ///< waiting on other stages, and idle at the end of the step
  Seconds other;    ///< optimizer
  Joules energy;    ///< static, dynamic while busy, and this GPU's HBM and link bytes
};

struct StepResult {
  Seconds step_time;
  double tokens_per_s = 0, mfu = 0, hfu = 0;
  FlopRate model_flops_per_gpu, hardware_flops_per_gpu;
  Seconds compute, exposed_comm, bubble, other;  ///< per GPU, averaged over stages
  Memory memory;
  Joules step_energy;
  double energy_per_token_j = 0;
  Watts gpu_avg_power, cluster_avg_power;
  Frequency clock;
  Bytes hbm_bytes, scale_up_bytes, scale_out_bytes;  ///< per step, whole cluster
  std::vector<Seconds> stage_busy;                   ///< compute per stage
  /// One micro-batch through the first layer of stage 0, as Megatron's per-layer timers see it:
  /// compute plus the exposed TP/CP/EP communication; backward includes recompute.
  Seconds layer_forward, layer_backward;
  /// With StepOptions::timeline: every task of one rank per stage (the event engine: of one
  /// rank of each rank class, at most kShownClasses of them, each stage's first rank's first).
  std::vector<TimelineEvent> timeline;
  std::vector<Straggler> stragglers;    ///< the slow GPUs the step waited for
  std::vector<StageTimes> stages;       ///< per pipeline stage, one GPU's
  std::vector<OpPoint> ops;             ///< with StepOptions::timeline: kernels for the roofline
  /// With StepOptions::link_bytes: bytes each directed link (by id) carries in the step, every
  /// collective of every group routed as the flow model routes it.
  std::vector<double> link_bytes;
  /// The event engine: the rank classes it simulated one rank of (0: the composed step), and
  /// whether they took in the links the ranks' connections share (classes.hpp, Contention).
  std::uint64_t rank_classes = 0;
  bool classes_exact = true;
};

/// A result as bytes and back, exactly (results cross MPI ranks this way).
std::string pack(const StepResult& r);
StepResult unpack_step(const std::string& bytes);

using parallelism::shard_of;

/// Collective costs already computed, keyed by op, groups and size: shared by the plans of a
/// search, whose plans repeat the same collectives over the same groups.
class CommCache;
std::shared_ptr<CommCache> make_comm_cache();

struct StepOptions {
  const collectives::NetworkModel* network = nullptr;
  Watts power_cap;  ///< 0 = TDP
  std::shared_ptr<CommCache> cache;  ///< null = a fresh one per step
  /// Bandwidth per link taken through the whole step by other traffic (an asynchronous
  /// checkpoint write), see CostParams. A cache must not mix steps with and without.
  std::span<const double> reserved_Bps;
  bool timeline = false;    ///< fill StepResult::timeline (named tasks, for --trace)
  bool link_bytes = false;  ///< fill StepResult::link_bytes (routes every group's transfers)
  /// One step over MPI ranks (every rank calls simulate_step together): under the flow
  /// model, the concurrent groups of a collective are split among the ranks, each rank routes
  /// and times only its share's flows, and the ranks combine them (engine::flow_exchange()).
  /// The result is the one-process result. Null = this process simulates everything.
  const collectives::FlowExchange* partition = nullptr;
  /// The event engine only: traffic beside the step (an asynchronous checkpoint write,
  /// failures::checkpoint_flows), flows of its solver under `flow` (SimulateOptions::background).
  std::span<const collectives::Flow> background;
  /// Cost one group per class of groups that provably cost the same (the default), or every
  /// group: the reference the classes must equal. A cache must not mix steps with and without.
  bool classes = true;
};
/// The cap a step runs under: `o.power_cap` when given (--power-cap, sweep's power_cap), else
/// the scenario's cluster.power_cap, range-checked against its GPU (hardware::check_power_cap)
/// naming that key; 0 = the TDP.
Watts power_cap_of(const Scenario& sc, const StepOptions& o);

/// Options with a network model and a power cap, the rest default.
inline StepOptions step_options(const collectives::NetworkModel* network, Watts power_cap = {}) {
  StepOptions o;
  o.network = network;
  o.power_cap = power_cap;
  return o;
}

/// Runs `once(options, reserve)` under the step's cap (power_cap_of: `o`'s, else the
/// scenario's, in the options it is given) with no reserve and, when the GPUs' average draw
/// came out above that cap (0 = TDP), once more with the board power their memory and link
/// traffic drew held back from the cores (hardware::GpuModel::reserve_for): a GPU's average
/// power never exceeds its cap. Shared by the composed step and the event engine.
StepResult within_cap(const Scenario& sc, const parallelism::Plan& p, const StepOptions& o,
                      const std::function<StepResult(const StepOptions&, Watts)>& once);

/// Simulates one step of `p` on `t` (built from s.cluster). Throws Error for plans that do
/// not fit in memory only when `require_fit`; the result says whether it fits.
StepResult simulate_step(const Scenario& s, const parallelism::Plan& p, const topology::Topology& t,
                         const StepOptions& o);

/// The SMs NCCL's kernel holds for a collective of program group `g`, one a channel: the
/// scale-up link's nccl_channels inside one domain; across domains, the scale-out link's
/// nccl_channels_per_gpu times the group's GPUs in its first member's node (NCCL runs a ring a
/// NIC, one NIC a GPU, doubled: src/graph/connect.cc), at most 64. 0 where a link gives none.
std::uint32_t nccl_sms(const ClusterSpec& c, const parallelism::Program& prog, const topology::Topology& t, std::uint32_t g);

/// The same step run by the event engine (engine/simulate.hpp over the step program of
/// parallelism/step_program.hpp): one rank per rank class simulated (classes.hpp), every
/// transfer a flow under `flow` (split over the MPI ranks of `o.partition`); the timeline and
/// roofline points are each stage's first rank's.
StepResult simulate_step_events(const Scenario& s, const parallelism::Plan& p, const topology::Topology& t,
                                const StepOptions& o);

}  // namespace wallsim::engine
