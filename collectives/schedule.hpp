// Collective algorithms as flow schedules. A schedule is a sequence of phases; a phase is a
// set of concurrent transfers that all finish before the next phase starts (the step of
// alpha-beta analyses), repeated `repeat` times (a ring's 2(n-1) identical steps are one
// phase with repeat 2(n-1), solved once). Pipelined algorithms split the message into chunks
// and count the pipeline's fill, steady and drain steps as repeats of one phase.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "topology/graph.hpp"

namespace wallsim::collectives {

enum class Op { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kBroadcast, kReduce, kSendRecv };
enum class Algo { kRing, kTree, kHalvingDoubling, kHierarchical, kDirect, kMesh2d, kNvls };

std::string to_string(Op op);
std::string to_string(Algo a);
/// Parses nccl-tests' names (all_reduce, ...); an Error naming `path` otherwise.
Op parse_op(const std::string& s, const std::string& path);
Algo parse_algo(const std::string& s, const std::string& path);
std::vector<Algo> all_algos();

/// nccl-tests' bus-bandwidth factor of an op on n ranks (2(n-1)/n for all_reduce, ...).
double busbw_factor(Op op, std::size_t n);

struct Transfer {
  topology::NodeId src = 0, dst = 0;
  Bytes bytes;
};

struct Phase {
  std::vector<Transfer> transfers;
  double repeat = 1.0;
  /// A pairing of distinct members, each sending `each` bytes to one and receiving from one,
  /// held as one line instead of n transfers: when `ring` is set, the phase also holds
  /// ring[r] -> ring[partner(r)] for every r, the partner by `pairing`. Listed one by one, the
  /// direct all-to-all's 16,383 steps on 16,384 GPUs would be 268 million transfers (4 GB).
  std::shared_ptr<const std::vector<topology::NodeId>> ring;
  std::size_t shift = 0;
  Bytes each;
  /// kRotation: partner(r) = (r + shift) % n (the direct all-to-all's steps); kExchange:
  /// partner(r) = r xor shift, n a power of two (halving-doubling's exchange at distance shift).
  enum class Pairing : std::uint8_t { kRotation, kExchange };
  Pairing pairing = Pairing::kRotation;

  /// Number of transfers, listed and paired.
  [[nodiscard]] std::size_t size() const { return transfers.size() + (ring ? ring->size() : 0); }
  /// A rotation and nothing else (what the flow model's pair classes take).
  [[nodiscard]] bool rotation_only() const { return ring && pairing == Pairing::kRotation && transfers.empty(); }
  /// Calls fn(const Transfer&) on every transfer: the listed ones, then the pairing's in ring order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& x : transfers) fn(x);
    if (!ring) return;
    const auto& r = *ring;
    const std::size_t n = r.size();
    if (pairing == Pairing::kExchange) {
      for (std::size_t i = 0; i < n; ++i) fn(Transfer{r[i], r[i ^ shift], each});
      return;
    }
    std::size_t j = n == 0 ? 0 : shift % n;
    for (std::size_t i = 0; i < n; ++i) {
      fn(Transfer{r[i], r[j], each});
      if (++j == n) j = 0;
    }
  }
};

struct Schedule {
  Op op = Op::kAllReduce;
  Algo algo = Algo::kRing;
  std::size_t chunks = 1;  ///< pipeline chunks (tree, chain); 1 when not pipelined
  std::vector<Phase> phases;
};

/// What the algorithm builders need to know beyond the group.
struct CollectiveOptions {
  Seconds alpha_hint = units::us(5);  ///< step latency used to pick the pipeline chunk count
  Bandwidth beta_hint = units::gbyte_per_s(50);
  std::size_t max_chunks = 1024;
  /// all_to_all with hierarchical, as DeepEP dispatches MoE tokens: the share of a rank's buffer
  /// it sends once to each other scale-up domain's rank of its own index (a token goes once to
  /// each domain its experts touch, not once per expert); negative when not given.
  double rail_share = -1.0;
};

/// The schedule of `op` with `algo` over `group` (endpoint ids, rank order) for a buffer of
/// `size` bytes as nccl-tests counts it (the total array for all_gather, reduce_scatter and
/// all_to_all). nullopt with `why_not` filled when the algorithm cannot run this case.
std::optional<Schedule> build_schedule(const topology::Topology& t, Op op, Algo algo,
                                       const std::vector<topology::NodeId>& group, Bytes size,
                                       const CollectiveOptions& opt, std::string* why_not);

}  // namespace wallsim::collectives
