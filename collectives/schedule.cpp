#include "collectives/schedule.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/error.hpp"
#include "core/text.hpp"

namespace wallsim::collectives {
namespace {

using topology::NodeId;
using Group = std::vector<NodeId>;

const std::vector<std::pair<Op, std::string>> kOps = {
    {Op::kAllReduce, "all_reduce"}, {Op::kAllGather, "all_gather"},
    {Op::kReduceScatter, "reduce_scatter"}, {Op::kAllToAll, "all_to_all"},
    {Op::kBroadcast, "broadcast"}, {Op::kReduce, "reduce"}, {Op::kSendRecv, "send_recv"}};
const std::vector<std::pair<Algo, std::string>> kAlgos = {
    {Algo::kRing, "ring"}, {Algo::kTree, "tree"}, {Algo::kHalvingDoubling, "halving_doubling"},
    {Algo::kHierarchical, "hierarchical"}, {Algo::kDirect, "direct"}, {Algo::kMesh2d, "mesh2d"}, {Algo::kNvls, "nvls"}};

template <class E>
E parse_name(const std::vector<std::pair<E, std::string>>& table, const std::string& s,
             const std::string& path, const char* what) {
  std::vector<std::string> names;
  for (const auto& [e, n] : table) {
    if (n == s) return e;
    names.push_back(n);
  }
  throw Error(path, "unknown " + std::string(what) + " '" + s + "'" + did_you_mean(s, names) +
                        "; one of " + join(names, ", "));
}

/// Every rank of `ring` sends `bytes` to its successor, appended to `p`.
void append_ring(Phase& p, const Group& ring, Bytes bytes) {
  const std::size_t n = ring.size();
  if (n == 0) return;
  p.transfers.reserve(p.transfers.size() + n);
  for (std::size_t i = 0; i + 1 < n; ++i) p.transfers.push_back({ring[i], ring[i + 1], bytes});
  p.transfers.push_back({ring[n - 1], ring[0], bytes});
}

/// Appends a phase of ring steps for many disjoint rings at once (all rows, all rails).
Phase rings_step(const std::vector<Group>& rings, Bytes bytes, double repeat) {
  Phase p;
  p.repeat = repeat;
  std::size_t total = 0;
  for (const auto& r : rings) total += r.size();
  p.transfers.reserve(total);
  for (const auto& r : rings) append_ring(p, r, bytes);
  return p;
}

/// The ranks of `group` per scale-up domain of `dom` endpoints, domains in order of first
/// appearance and ranks in group order.
std::vector<Group> by_domain(const Group& group, std::size_t dom) {
  std::vector<std::size_t> slot;  // domain id -> its index in the result, + 1 (0: not seen)
  std::vector<Group> local;
  for (NodeId e : group) {
    const std::size_t d = e / dom;
    if (d >= slot.size()) slot.resize(d + 1, 0);
    if (slot[d] == 0) {
      local.emplace_back();
      slot[d] = local.size();
    }
    local[slot[d] - 1].push_back(e);
  }
  return local;
}

/// NCCL's rings (channels) for `group`: one ring, unless the group spans several scale-up
/// domains with g >= 2 members in each, when there are g rings, each carrying 1/g of the data,
/// that enter and leave every domain through the same local position (the same rail, so each
/// NIC carries one ring each way): ring c visits domain d's members rotated to start at
/// (c - d) mod g and leaves from the one before it, where domain d + 1's rotation starts.
std::vector<Group> ring_channels(const topology::Topology& t, const Group& group) {
  const std::size_t dom = t.info().domain_size;
  if (dom == 0) return {group};
  const std::vector<Group> members = by_domain(group, dom);
  const std::size_t g = members.front().size();
  if (members.size() < 2 || g < 2) return {group};
  for (const auto& m : members) {
    if (m.size() != g) return {group};
  }
  std::vector<Group> rings(g);
  for (std::size_t c = 0; c < g; ++c) {
    rings[c].reserve(group.size());
    for (std::size_t d = 0; d < members.size(); ++d) {
      const std::size_t start = (c + g * members.size() - d) % g;
      for (std::size_t i = 0; i < g; ++i) rings[c].push_back(members[d][(start + i) % g]);
    }
  }
  return rings;
}

/// Pipeline chunks minimising (steps + C - 1)(alpha + S/(C beta)): C* = sqrt((steps-1) S / (alpha beta)).
std::size_t chunk_count(double steps, Bytes size, const CollectiveOptions& o) {
  const double c = std::sqrt(std::max(0.0, steps - 1.0) * size.value() /
                             (o.alpha_hint.value() * o.beta_hint.value()));
  return static_cast<std::size_t>(std::clamp(std::round(c), 1.0, static_cast<double>(o.max_chunks)));
}

/// Parent of position i in a binary tree laid out in heap order, over `order`.
void tree_edges(const Group& order, std::vector<std::pair<NodeId, NodeId>>& child_parent) {
  for (std::size_t i = 1; i < order.size(); ++i) child_parent.emplace_back(order[i], order[(i - 1) / 2]);
}

int tree_depth(std::size_t n) { return n <= 1 ? 0 : static_cast<int>(std::bit_width(n) - 1); }

}  // namespace

std::string to_string(Op op) {
  for (const auto& [e, n] : kOps) if (e == op) return n;
  return "?";
}
std::string to_string(Algo a) {
  for (const auto& [e, n] : kAlgos) if (e == a) return n;
  return "?";
}
Op parse_op(const std::string& s, const std::string& path) { return parse_name(kOps, s, path, "op"); }
Algo parse_algo(const std::string& s, const std::string& path) {
  return parse_name(kAlgos, s, path, "algorithm");
}
std::vector<Algo> all_algos() {
  std::vector<Algo> v;
  for (const auto& [e, n] : kAlgos) v.push_back(e);
  return v;
}

double busbw_factor(Op op, std::size_t n) {
  const double d = static_cast<double>(n);
  switch (op) {
    case Op::kAllReduce: return 2.0 * (d - 1.0) / d;
    case Op::kAllGather:
    case Op::kReduceScatter:
    case Op::kAllToAll: return (d - 1.0) / d;
    case Op::kBroadcast:
    case Op::kReduce:
    case Op::kSendRecv: return 1.0;
  }
  return 1.0;
}

std::optional<Schedule> build_schedule(const topology::Topology& t, Op op, Algo algo,
                                       const Group& group, Bytes size,
                                       const CollectiveOptions& opt, std::string* why_not) {
  auto fail = [&](std::string why) -> std::optional<Schedule> {
    if (why_not != nullptr) *why_not = std::move(why);
    return std::nullopt;
  };
  const std::size_t n = group.size();
  const double dn = static_cast<double>(n);
  Schedule s;
  s.op = op;
  s.algo = algo;
  if (n < 2) return fail("needs at least 2 ranks");
  switch (algo) {
    case Algo::kRing: {
      const auto channels = ring_channels(t, group);
      const double ch = static_cast<double>(channels.size());
      switch (op) {
        case Op::kAllReduce: s.phases.push_back(rings_step(channels, size / (dn * ch), 2.0 * (dn - 1.0))); break;
        case Op::kAllGather:
        case Op::kReduceScatter: s.phases.push_back(rings_step(channels, size / (dn * ch), dn - 1.0)); break;
        case Op::kBroadcast:
        case Op::kReduce: {
          // A pipelined chain from the root (rank 0): n-1 hops plus C-1 chunks of fill.
          s.chunks = chunk_count(dn - 1.0, size, opt);
          Phase p;
          p.repeat = dn - 1.0 + static_cast<double>(s.chunks) - 1.0;
          const Bytes chunk = size / static_cast<double>(s.chunks);
          for (std::size_t i = 0; i + 1 < n; ++i) {
            if (op == Op::kBroadcast) p.transfers.push_back({group[i], group[i + 1], chunk});
            else p.transfers.push_back({group[n - 1 - i], group[n - 2 - i], chunk});
          }
          s.phases.push_back(std::move(p));
          break;
        }
        default: return fail("ring runs all_reduce, all_gather, reduce_scatter, broadcast and reduce");
      }
      return s;
    }
    case Algo::kTree: {
      if (op != Op::kAllReduce && op != Op::kBroadcast && op != Op::kReduce) {
        return fail("tree runs all_reduce, broadcast and reduce");
      }
      const int depth = tree_depth(n);
      std::vector<std::pair<NodeId, NodeId>> edges;
      tree_edges(group, edges);
      Phase p;
      if (op == Op::kAllReduce) {
        // Double binary tree: a second tree on the ranks shifted by one, each tree carrying
        // half the data; reduce up and broadcast down overlap in the pipeline's steady state.
        Group shifted(group.begin() + 1, group.end());
        shifted.push_back(group.front());
        tree_edges(shifted, edges);
        s.chunks = chunk_count(2.0 * depth, size / 2.0, opt);
        p.repeat = 2.0 * depth + static_cast<double>(s.chunks) - 1.0;
        const Bytes chunk = size / 2.0 / static_cast<double>(s.chunks);
        p.transfers.reserve(2 * edges.size());
        for (const auto& [child, parent] : edges) {
          p.transfers.push_back({child, parent, chunk});
          p.transfers.push_back({parent, child, chunk});
        }
      } else {
        s.chunks = chunk_count(depth, size, opt);
        p.repeat = depth + static_cast<double>(s.chunks) - 1.0;
        const Bytes chunk = size / static_cast<double>(s.chunks);
        for (const auto& [child, parent] : edges) {
          if (op == Op::kBroadcast) p.transfers.push_back({parent, child, chunk});
          else p.transfers.push_back({child, parent, chunk});
        }
      }
      s.phases.push_back(std::move(p));
      return s;
    }
    case Algo::kHalvingDoubling: {
      if (!std::has_single_bit(n)) return fail("halving_doubling needs a power-of-two group");
      if (op != Op::kAllReduce && op != Op::kReduceScatter && op != Op::kAllGather) {
        return fail("halving_doubling runs all_reduce, reduce_scatter and all_gather");
      }
      const auto members = std::make_shared<const Group>(group);
      auto exchange = [&](std::size_t distance, Bytes bytes) {
        Phase p;
        p.ring = members;
        p.pairing = Phase::Pairing::kExchange;
        p.shift = distance;
        p.each = bytes;
        s.phases.push_back(std::move(p));
      };
      if (op != Op::kAllGather) {  // recursive halving: distances n/2 ... 1, halves n/2 ... 1
        Bytes part = size;
        for (std::size_t d = n / 2; d >= 1; d /= 2) {
          part = part / 2.0;
          exchange(d, part);
        }
      }
      if (op != Op::kReduceScatter) {  // recursive doubling: distances 1 ... n/2
        Bytes part = size / dn;
        for (std::size_t d = 1; d < n; d *= 2) {
          exchange(d, part);
          part = part * 2.0;
        }
      }
      return s;
    }
    case Algo::kHierarchical: {
      const std::size_t dom = t.info().domain_size;
      if (dom < 2) return fail("hierarchical needs scale-up domains (a clos cluster)");
      const bool dispatch = op == Op::kAllToAll;
      if (dispatch && opt.rail_share < 0.0) {
        return fail("hierarchical runs all_to_all as MoE dispatch only (parallel.moe_token_dispatcher: deepep)");
      }
      if (!dispatch && op != Op::kAllReduce && op != Op::kAllGather && op != Op::kReduceScatter) {
        return fail("hierarchical runs all_reduce, all_gather, reduce_scatter and MoE dispatch");
      }
      // Group the ranks by domain, keeping rank order; every domain must hold m ranks.
      const std::vector<Group> local = by_domain(group, dom);
      const std::size_t k = local.size(), m = local.front().size();
      for (const auto& l : local) {
        if (l.size() != m) return fail("hierarchical needs the same number of ranks in every domain");
      }
      if (dispatch) {
        // DeepEP (DeepSeek-V3 sec. 3.2.2): each token crosses the scale-out once to every other
        // domain its experts touch, to the rank of its own index there, which forwards it over
        // the scale-up to the ranks holding its experts; forwarding is pipelined with the
        // receipt, so both run as one step. A rank's expert copies (its whole buffer) are
        // spread evenly over its domain's m ranks: each sends buffer / m to each of m - 1 peers.
        Phase p;
        p.transfers.reserve(k * m * (k + m - 2));
        for (std::size_t d = 0; d < k; ++d) {
          for (std::size_t j = 0; j < m; ++j) {
            for (std::size_t e = 0; e < k; ++e) {
              if (e != d) p.transfers.push_back({local[d][j], local[e][j], size * opt.rail_share});
            }
            for (std::size_t i = 0; i < m; ++i) {
              if (i != j) p.transfers.push_back({local[d][j], local[d][i], size / static_cast<double>(m)});
            }
          }
        }
        s.phases.push_back(std::move(p));
        return s;
      }
      if (k < 2 || m < 2) return fail("hierarchical needs at least 2 domains of at least 2 ranks");
      std::vector<Group> rails(m);
      for (std::size_t j = 0; j < m; ++j) {
        for (std::size_t d = 0; d < k; ++d) rails[j].push_back(local[d][j]);
      }
      const double dm = static_cast<double>(m), dk = static_cast<double>(k);
      if (op == Op::kAllReduce) {
        s.phases.push_back(rings_step(local, size / dm, dm - 1.0));          // reduce-scatter in domain
        s.phases.push_back(rings_step(rails, size / (dm * dk), 2.0 * (dk - 1.0)));  // all-reduce per rail
        s.phases.push_back(rings_step(local, size / dm, dm - 1.0));          // all-gather in domain
      } else if (op == Op::kReduceScatter) {
        s.phases.push_back(rings_step(local, size / dm, dm - 1.0));
        s.phases.push_back(rings_step(rails, size / dn, dk - 1.0));
      } else {
        s.phases.push_back(rings_step(rails, size / dn, dk - 1.0));
        s.phases.push_back(rings_step(local, size / dm, dm - 1.0));
      }
      return s;
    }
    case Algo::kNvls: {
      // NVLink SHARP (NCCL's NVLS): the switch reduces and multicasts. Each GPU's port carries
      // S (every slice, read by the switch's reductions) plus S/n (its reduced slice stored for
      // multicast) each way, at the switch's reduction rate: modelled as that load spread over
      // the GPU's peers, inflated by 1 / switch_reduction.
      if (op != Op::kAllReduce) return fail("nvls runs all_reduce");
      const double eff = t.info().switch_reduction;
      const std::size_t dom = t.info().domain_size;
      if (eff <= 0.0 || dom == 0) return fail("needs a scale-up switch with in-switch reduction (switch_reduction)");
      for (auto r : group) {
        if (r / dom != group.front() / dom) return fail("nvls needs the whole group in one scale-up domain");
      }
      Phase p;
      p.transfers.reserve(n * (n - 1));
      const Bytes each = size * ((dn + 1.0) / (dn * (dn - 1.0)) / eff);
      for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
          if (i != j) p.transfers.push_back({group[i], group[j], each});
        }
      }
      s.phases.push_back(std::move(p));
      return s;
    }
    case Algo::kDirect: {
      if (op == Op::kSendRecv) {
        // nccl-tests sendrecv: every rank sends to the next and receives from the previous.
        Phase p;
        for (std::size_t r = 0; r < n; ++r) p.transfers.push_back({group[r], group[(r + 1) % n], size});
        s.phases.push_back(std::move(p));
        return s;
      }
      if (op != Op::kAllToAll) return fail("direct runs all_to_all and send_recv");
      // Pairwise exchange: in step i every rank sends its block for rank r+i (a rotation).
      const auto ring = std::make_shared<const Group>(group);
      for (std::size_t i = 1; i < n; ++i) {
        Phase p;
        p.ring = ring;
        p.shift = i;
        p.each = size / dn;
        s.phases.push_back(std::move(p));
      }
      return s;
    }
    case Algo::kMesh2d: {
      const auto& dims = t.info().grid_dims;
      if (dims.size() != 2 || t.num_endpoints() != n) return fail("mesh2d needs a whole 2-D torus or mesh");
      for (std::size_t i = 0; i < n; ++i) {
        if (group[i] != i) return fail("mesh2d needs the group in the grid's natural order");
      }
      if (op != Op::kAllReduce) return fail("mesh2d runs all_reduce");
      const std::size_t X = static_cast<std::size_t>(dims[0]), Y = static_cast<std::size_t>(dims[1]);
      if (X < 2 || Y < 2) return fail("mesh2d needs both dimensions of at least 2");
      std::vector<Group> rows(Y), cols(X);
      for (std::size_t y = 0; y < Y; ++y) {
        for (std::size_t x = 0; x < X; ++x) {
          rows[y].push_back(static_cast<NodeId>(y * X + x));
          cols[x].push_back(static_cast<NodeId>(y * X + x));
        }
      }
      const double dx = static_cast<double>(X), dy = static_cast<double>(Y);
      s.phases.push_back(rings_step(rows, size / dx, dx - 1.0));               // reduce-scatter along rows
      s.phases.push_back(rings_step(cols, size / (dx * dy), 2.0 * (dy - 1.0))); // all-reduce along columns
      s.phases.push_back(rings_step(rows, size / dx, dx - 1.0));               // all-gather along rows
      return s;
    }
  }
  return fail("unknown algorithm");
}

}  // namespace wallsim::collectives
