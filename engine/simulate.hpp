// The step engine: runs a step program (parallelism/program.hpp) as one discrete-event
// simulation. Per rank, each stream runs its ops in program order; an op starts when it heads
// its stream and its dependencies are done. Compute ops end after their time. Communication
// ops become transfers: a collective, once every member has reached it, is its algorithm's
// steps (collectives/schedule.hpp) unrolled into a dependency graph of transfers (a rank sends
// step k once it has received step k-1 and sent its own step k-1, as NCCL's rings and trees
// forward data, with no barrier between steps); a send, once its receive is posted, is one
// transfer. Under `flow` every transfer of every rank is a flow of one incremental max-min
// solver on the shared fabric, so all kinds of traffic slow one another; under `analytic` a
// transfer costs its path's latency plus its bytes over the path's narrowest link, alone.
// An all-to-all sends every pair's block at once (NCCL's grouped send/recv); in a step with no
// dependencies inside, the transfers of one sender class, receiver class, size and route cost
// are one flow over all their routes (each link with its count). The two compute streams
// (kCompute, kCompute2) run one kernel at a time between them.
//
// With `classes`, one rank per rank class (classes.hpp) is simulated: a collective runs once
// per group class, each of its transfers one flow weighted over the copies' routes (every
// copy of a transfer at the same rate: the class's), and a class's op ends when its last
// member in the group is done; a send stands for every rank of its class's. Without, every
// rank is simulated (each its own class).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "collectives/flow_model.hpp"
#include "engine/classes.hpp"
#include "parallelism/program.hpp"
#include "topology/graph.hpp"

namespace wallsim::engine {

struct SimulateOptions {
  bool flow = true;   ///< the flow-level model; false: alpha-beta, no contention
  Seconds overhead;   ///< software overhead per transfer, before it enters the network
  /// Time of one run of a compute op's kernel when the op has no duration (the roofline; the
  /// engine multiplies it by the op's count); required if any op needs it.
  std::function<Seconds(const parallelism::ProgramOp&, std::uint32_t rank)> compute_time;
  std::span<const double> reserved_Bps;  ///< bandwidth taken on links by outside traffic
  bool link_bytes = false;  ///< fill ProgramResult::link_bytes (routes every transfer)
  /// Traffic beside the program (an asynchronous checkpoint write): flows of the same solver
  /// under `flow`, so the program's transfers and these share links as max-min says; they
  /// delay no op (the step ends with its last op). Ignored under `analytic` (no contention).
  std::span<const collectives::Flow> background;
  /// One rank per rank class (false: every rank); `speed` (by rank, optional) tells slow GPUs
  /// apart for the classes.
  bool classes = false;
  std::vector<double> speed;
  /// With `classes` under `flow`: the ops the ranks left to simulate may hold for the classes to
  /// take in the links the connections share (Contention::max_ops).
  std::size_t classes_max_ops = Contention{}.max_ops;
  /// Flows each transfer between scale-up domains is cut into, each hashed onto its own
  /// equal-cost path (NCCL's queue pairs per connection; Llama 3's collective library opens 16
  /// between two GPUs for E-ECMP to spread): each carries its share of the bytes.
  std::uint32_t flows_per_connection = 1;
  /// SMs a collective of group g (the program's) on a data-parallel stream (gradient buckets,
  /// ZeRO's gathers) holds while it is in flight, from its post to its end: NCCL's kernel, one
  /// CTA a channel, none shared with other kernels (NVIDIA/nccl#689). A kernel that starts
  /// beside such collectives runs on the SMs they leave (Kernel::sms_taken grows by theirs for
  /// that kernel; it keeps that share to its end). Unset: they take none.
  std::function<std::uint32_t(std::uint32_t g)> dp_sms;
  /// Under MPI (flow model): every rank runs the program, each holding some of the flows of
  /// one solver partitioned over the ranks; every rank gets the same result, bit for bit.
  const collectives::FlowExchange* exchange = nullptr;
};

struct OpSpan {
  Seconds start, end;  ///< start: the op began (a communication op: it was posted)
};

struct ProgramResult {
  Seconds makespan;                      ///< the last op's end
  RankClasses classes;                   ///< the rank classes simulated (every rank its own without)
  std::vector<std::vector<OpSpan>> ops;  ///< by class (its simulated rank), by op
  std::vector<Seconds> compute;          ///< by class: its simulated rank's time computing
  std::size_t transfers = 0;             ///< transfers put on the network (a class's copies as one)
  /// By class, the bytes its ranks together sent inside their scale-up domains and out of them.
  std::vector<Bytes> scale_up_sent, scale_out_sent;
  collectives::FlowStats flow;           ///< the flow solver's work (flow model)
  /// Bytes each link carried, every transfer counted once in its direction (when asked for).
  std::vector<double> link_bytes;
  /// When the last background flow finished (flow model; zero without any).
  Seconds background_end;
};

/// Runs `p` on `t`. An Error names the rank and op when the program cannot run (a send
/// without its receive, a collective some member never reaches, a dependency cycle).
ProgramResult simulate(const parallelism::Program& p, const topology::Topology& t, const SimulateOptions& o);

}  // namespace wallsim::engine
