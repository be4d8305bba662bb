// The step program: what every rank does in one training step, as a plain value (no times).
// Each rank runs its ops on the streams a framework has (StreamKind). An op starts when it
// heads its stream and the ops it depends on are done; a collective starts when every member of its
// group has reached it, a send when its receive is posted (NCCL's rendezvous). The engine
// (engine/simulate.hpp) only runs programs; the plan's program is built here in parallelism/.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "collectives/schedule.hpp"
#include "core/units.hpp"
#include "parallelism/model_math.hpp"
#include "parallelism/plan.hpp"
#include "topology/graph.hpp"

namespace wallsim::parallelism {

/// The streams of one rank: compute; a side stream for communication the plan overlaps with
/// compute (TP/CP/EP); gradient reduction; parameter gathers (ZeRO-3, FSDP); pipeline sends;
/// pipeline receives (posted apart from the sends, in order, each without waiting for the one
/// before to complete: irecvs, as Megatron batches its isend/irecv); and a second compute
/// stream, the backward of an overlapped forward-backward pair (DualPipe), whose kernels take
/// the SMs in turn with the compute stream's (one kernel at a time on the two) while either's
/// communication runs beside the other's kernels.
enum class StreamKind : std::uint8_t { kCompute, kSide, kDataParallel, kParamGather, kPipelineSend, kPipelineRecv, kCompute2 };
inline constexpr int kStreams = 7;
/// Whether kernels on `s` hold the SMs (the two compute streams share them).
constexpr bool holds_sms(StreamKind s) { return s == StreamKind::kCompute || s == StreamKind::kCompute2; }

struct ProgramOp {
  enum class Kind : std::uint8_t { kCompute, kCollective, kSend, kRecv };
  Kind kind = Kind::kCompute;
  StreamKind stream = StreamKind::kCompute;
  std::string name;
  std::vector<std::uint32_t> deps;  ///< ops of the same rank (indices) that must end first
  // compute: the kernel (FLOPs, HBM bytes, shape) the roofline times
  Kernel kernel{KernelKind::kGemm, {}, {}, {}};
  double count = 1.0;  ///< the kernel's time this many times (fused attention's backward: 2)
  bool optimizer = false;  ///< the optimizer step (reported apart from the passes' compute)
  Seconds duration;    ///< when set (> 0), the compute time as given, not from the roofline
  // collective: the `collective`-th collective of `group`, the same on every member
  std::uint32_t group = 0;
  std::uint32_t collective = 0;
  collectives::Op op = collectives::Op::kAllReduce;
  collectives::Algo algo = collectives::Algo::kRing;
  bool tuned = false;  ///< the engine picks the algorithm as NCCL's tuner would (fastest by alpha-beta)
  Bytes bytes;  ///< the collective's size (nccl-tests' meaning), or a send's payload
  /// MoE dispatch as DeepEP runs it (algo hierarchical, op all_to_all): the share of the buffer
  /// sent once to each other scale-up domain (collectives::CollectiveOptions::rail_share).
  double rail_share = -1.0;
  // send / receive: the peer rank and a tag that pairs them
  std::uint32_t peer = 0;
  std::uint32_t tag = 0;
};

/// `RankProgram::like` of a rank that holds its own ops.
inline constexpr std::uint32_t kOwnOps = ~std::uint32_t{0};

struct RankProgram {
  topology::NodeId gpu = 0;  ///< the endpoint this rank runs on
  std::vector<ProgramOp> ops;  ///< empty when the rank runs another's (`like`)
  /// The rank whose ops this one runs (kOwnOps: its own), as data-parallel replicas and the
  /// ranks of one pipeline stage do: the same ops, with that rank's groups and peers renamed
  /// to this rank's (`{theirs, mine}`); a group or peer not named is the same.
  std::uint32_t like = kOwnOps;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> group_names{}, peer_names{};
};

struct Program {
  std::vector<RankProgram> ranks;
  std::vector<std::vector<std::uint32_t>> groups;  ///< communicator groups, as rank indices

  /// The rank whose `ops` rank `r` runs (itself unless it runs another's).
  [[nodiscard]] std::uint32_t source_of(std::uint32_t r) const {
    return ranks[r].like == kOwnOps ? r : ranks[r].like;
  }
  [[nodiscard]] const std::vector<ProgramOp>& ops_of(std::uint32_t r) const { return ranks[source_of(r)].ops; }
  /// Op `op` of rank `r`'s ops: its group and its peer, as rank `r` sees them.
  [[nodiscard]] std::uint32_t group_of(std::uint32_t r, const ProgramOp& op) const {
    return renamed(ranks[r].group_names, op.group);
  }
  [[nodiscard]] std::uint32_t peer_of(std::uint32_t r, const ProgramOp& op) const {
    return renamed(ranks[r].peer_names, op.peer);
  }

 private:
  static std::uint32_t renamed(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& names, std::uint32_t x) {
    for (const auto& [theirs, mine] : names) {
      if (theirs == x) return mine;
    }
    return x;
  }
};

/// What one pipeline stage's passes cost and carry (per micro-batch and model chunk).
struct PassCosts {
  Seconds forward, backward, weight;  ///< weight: zero-bubble's deferred W pass (B without it)
  Bytes activation;                   ///< sent one way at each stage boundary, forward and back
  Bytes gradients;                    ///< all-reduced over `dp_groups` after the last backward
};

/// The step program of a pipeline: `stages[s]` (ranks of data-parallel replica r at
/// `stages[s][r]`) runs `schedule`'s passes in order (pipeline.hpp) on the compute stream; a
/// pass that needs another stage's output waits for its receive; each output goes one way to
/// the next stage (forward) or the previous one (backward) on the pipeline streams; after its last backward
/// each rank all-reduces its gradients with its data-parallel peers. `gpus[rank]` places ranks.
/// `group`: the interleaved schedule's micro-batch group (0: pp; see stage_order).
Program pipeline_program(PipeSchedule schedule, int pp, int vpp, int micro_batches, int dp,
                         const std::vector<topology::NodeId>& gpus, const PassCosts& costs, int group = 0);

}  // namespace wallsim::parallelism
