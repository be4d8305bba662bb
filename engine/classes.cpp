#include "engine/classes.hpp"

#include <algorithm>
#include <bit>
#include <map>
#include <numeric>

#include "core/hash.hpp"

namespace wallsim::engine {
namespace {

using parallelism::Program;
using parallelism::ProgramOp;

std::uint64_t mix(std::uint64_t h, std::uint64_t x) { return splitmix64(h ^ x); }
std::uint64_t bits(double x) { return std::bit_cast<std::uint64_t>(x); }
std::uint64_t text(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

/// What a rank's ops do, groups and peers aside (their names are the rank's own).
std::uint64_t ops_hash(const std::vector<ProgramOp>& ops) {
  std::uint64_t h = ops.size();
  for (const ProgramOp& op : ops) {
    h = mix(h, static_cast<std::uint64_t>(op.kind) | static_cast<std::uint64_t>(op.stream) << 8 |
                   static_cast<std::uint64_t>(op.op) << 16 | static_cast<std::uint64_t>(op.algo) << 24 |
                   static_cast<std::uint64_t>(op.tuned) << 32 | static_cast<std::uint64_t>(op.optimizer) << 33);
    for (auto d : op.deps) h = mix(h, d);
    h = mix(h, bits(op.count));
    h = mix(h, bits(op.duration.value()));
    h = mix(h, bits(op.bytes.value()));
    h = mix(h, op.collective);
    h = mix(h, op.tag);
    if (op.kind == ProgramOp::Kind::kCompute && op.duration.value() <= 0.0) {
      const auto& k = op.kernel;
      h = mix(h, text(k.name));
      for (double x : {k.flops.value(), k.bytes.value(), k.rows, k.cols, k.depth, k.batch, k.useful, k.written.value(), k.keys}) {
        h = mix(h, bits(x));
      }
      h = mix(h, static_cast<std::uint64_t>(k.sms_taken));
      h = mix(h, static_cast<std::uint64_t>(k.kind) | static_cast<std::uint64_t>(k.causal) << 8 |
                     static_cast<std::uint64_t>(k.backward) << 9 | static_cast<std::uint64_t>(k.pass) << 10 |
                     static_cast<std::uint64_t>(k.sms_while_comm) << 12 | static_cast<std::uint64_t>(k.norm) << 13 |
                     static_cast<std::uint64_t>(k.wgrad) << 14 | static_cast<std::uint64_t>(k.bf16_only) << 15);
    }
  }
  return h;
}

/// Ids for values, in the order first seen.
template <class Key>
class Ids {
 public:
  std::uint32_t operator()(const Key& k) {
    return map_.try_emplace(k, static_cast<std::uint32_t>(map_.size())).first->second;
  }
  [[nodiscard]] std::size_t size() const { return map_.size(); }

 private:
  std::map<Key, std::uint32_t> map_;
};

}  // namespace

std::uint64_t route_key(std::uint32_t group, topology::NodeId src, topology::NodeId dst) {
  return splitmix64(splitmix64(splitmix64(group) ^ src) ^ (static_cast<std::uint64_t>(dst) << 32 | 0x5bd1e995ULL));
}

RankClasses every_rank(const Program& p) {
  RankClasses c;
  c.of.resize(p.ranks.size());
  std::iota(c.of.begin(), c.of.end(), 0u);
  c.rep = c.of;
  c.size.assign(p.ranks.size(), 1);
  c.group_rep.resize(p.groups.size());
  std::iota(c.group_rep.begin(), c.group_rep.end(), 0u);
  c.copies.resize(p.groups.size());
  for (std::uint32_t g = 0; g < p.groups.size(); ++g) c.copies[g] = {g};
  return c;
}

RankClasses classify(const Program& p, const topology::Topology& t, std::span<const double> speed) {
  const auto n = static_cast<std::uint32_t>(p.ranks.size());
  topology::Path scratch;
  auto cost = [&](std::uint32_t group, std::uint32_t a, std::uint32_t b, std::vector<std::uint64_t>& out) {
    const auto src = p.ranks[a].gpu, dst = p.ranks[b].gpu;
    const auto c = t.route_cost(src, dst, route_key(group, src, dst), scratch);
    out.push_back(bits(c.latency.value()));
    out.push_back(bits(c.bandwidth.value()));
  };

  // Each group's route costs, as an id (groups with the same costs position by position share
  // it), and each member's own: its costs to and from the other members.
  std::vector<std::uint32_t> group_cost(p.groups.size());
  std::vector<std::vector<std::uint32_t>> member_cost(p.groups.size());
  {
    Ids<std::vector<std::uint64_t>> ids, rows;
    std::vector<std::uint64_t> sig, row;
    std::vector<std::size_t> offsets;
    for (std::uint32_t g = 0; g < p.groups.size(); ++g) {
      const auto& m = p.groups[g];
      const std::size_t k = m.size();
      offsets.clear();
      if (k <= 64) {
        for (std::size_t j = 1; j < k; ++j) offsets.push_back(j);
      } else {
        offsets = {1, k - 1, k / 2};
      }
      // to[a]: the costs from member a to the members `offsets` after it, in ring order
      std::vector<std::vector<std::uint64_t>> to(k);
      sig.clear();
      for (std::size_t a = 0; a < k; ++a) {
        for (auto j : offsets) cost(g, m[a], m[(a + j) % k], to[a]);
        sig.insert(sig.end(), to[a].begin(), to[a].end());
      }
      group_cost[g] = ids(sig);
      std::vector<std::vector<std::uint64_t>> ordered(k), sorted(k);
      for (std::size_t a = 0; a < k; ++a) {
        row = to[a];
        for (std::size_t q = 0; q < offsets.size(); ++q) {  // from the member `offsets[q]` before it
          const std::size_t b = (a + k - offsets[q]) % k;
          row.push_back(to[b][2 * q]);
          row.push_back(to[b][2 * q + 1]);
        }
        ordered[a] = row;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs;  // to (odd) and from (even)
        for (std::size_t x = 0; x < row.size(); x += 2) pairs.emplace_back(row[x], row[x + 1] ^ (x < row.size() / 2 ? 1 : 0));
        std::sort(pairs.begin(), pairs.end());
        for (const auto& [lat, bw] : pairs) {
          sorted[a].push_back(lat);
          sorted[a].push_back(bw);
        }
      }
      // A group whose members all see the same costs (as a multiset) is symmetric: its members
      // are alike whatever their place (a ring over two nodes meets the other node at another
      // step for each member, at the same cost). One that is not (a member's cable failed) tells
      // its members apart by their costs in ring order: a ring step or an all-to-all round
      // meets the odd member at another time for each.
      const bool symmetric = std::all_of(sorted.begin(), sorted.end(), [&](const auto& x) { return x == sorted[0]; });
      for (std::size_t a = 0; a < k; ++a) member_cost[g].push_back(rows(symmetric ? sorted[a] : ordered[a]));
    }
  }

  // Each rank's groups and peers, in the order its ops first name them.
  std::vector<std::vector<std::uint32_t>> src_groups(n), src_peers(n);
  std::vector<std::uint64_t> src_hash(n, 0);
  for (std::uint32_t r = 0; r < n; ++r) {
    if (p.ranks[r].like != parallelism::kOwnOps) continue;
    src_hash[r] = ops_hash(p.ranks[r].ops);
    for (const ProgramOp& op : p.ranks[r].ops) {
      auto& list = op.kind == ProgramOp::Kind::kCollective ? src_groups[r] : src_peers[r];
      if (op.kind == ProgramOp::Kind::kCompute) continue;
      const std::uint32_t x = op.kind == ProgramOp::Kind::kCollective ? op.group : op.peer;
      if (std::find(list.begin(), list.end(), x) == list.end()) list.push_back(x);
    }
  }
  // Rank r's names for the groups (or peers) its ops' source rank names.
  auto renamed = [&](std::uint32_t r, bool groups, std::vector<std::uint32_t>& out) {
    out.clear();
    for (auto x : (groups ? src_groups : src_peers)[p.source_of(r)]) {
      ProgramOp op;
      op.group = x;
      op.peer = x;
      out.push_back(groups ? p.group_of(r, op) : p.peer_of(r, op));
    }
  };
  auto groups_of = [&](std::uint32_t r, std::vector<std::uint32_t>& out) { renamed(r, true, out); };
  auto peers_of = [&](std::uint32_t r, std::vector<std::uint32_t>& out) { renamed(r, false, out); };

  std::vector<std::uint32_t> colour(n);
  std::size_t colours = 0;
  {
    Ids<std::pair<std::uint64_t, std::uint64_t>> ids;
    for (std::uint32_t r = 0; r < n; ++r) {
      colour[r] = ids({src_hash[p.source_of(r)], bits(speed.empty() ? 1.0 : speed[r])});
    }
    colours = ids.size();
  }
  std::vector<std::uint32_t> gs, ps;
  std::vector<std::uint64_t> sig;
  while (true) {
    Ids<std::vector<std::uint64_t>> ids;
    std::vector<std::uint32_t> next(n);
    for (std::uint32_t r = 0; r < n; ++r) {
      sig.clear();
      sig.push_back(colour[r]);
      groups_of(r, gs);
      for (auto g : gs) {
        sig.push_back(group_cost[g]);
        sig.push_back(p.groups[g].size());
        const auto at = std::find(p.groups[g].begin(), p.groups[g].end(), r);
        sig.push_back(at == p.groups[g].end() ? ~std::uint64_t{0} : member_cost[g][static_cast<std::size_t>(at - p.groups[g].begin())]);
        for (auto m : p.groups[g]) sig.push_back(colour[m]);
      }
      peers_of(r, ps);
      for (auto q : ps) {
        sig.push_back(q < n ? colour[q] : ~std::uint64_t{0});
        if (q < n) {
          cost(kP2pKey, r, q, sig);
          cost(kP2pKey, q, r, sig);
        }
      }
      next[r] = ids(sig);
    }
    colour.swap(next);
    if (ids.size() == colours) break;  // refinement only splits: no split, stable
    colours = ids.size();
  }

  RankClasses c;
  c.of = colour;
  c.rep.assign(colours, parallelism::kOwnOps);
  c.size.assign(colours, 0);
  for (std::uint32_t r = 0; r < n; ++r) {
    if (c.rep[colour[r]] == parallelism::kOwnOps) c.rep[colour[r]] = r;
    ++c.size[colour[r]];
  }
  c.group_rep.resize(p.groups.size());
  c.copies.resize(p.groups.size());
  // A group's role: which of its first member's groups it is (a TP and a CP group of two
  // ranks each may have the same members' classes and route costs; they are not copies).
  std::vector<std::uint32_t> role(p.groups.size(), 0);
  for (std::uint32_t r = 0; r < n; ++r) {
    groups_of(r, gs);
    for (std::uint32_t k = 0; k < gs.size(); ++k) {
      if (gs[k] < p.groups.size() && !p.groups[gs[k]].empty() && p.groups[gs[k]].front() == r) role[gs[k]] = k;
    }
  }
  std::map<std::vector<std::uint64_t>, std::uint32_t> first;
  for (std::uint32_t g = 0; g < p.groups.size(); ++g) {
    sig.assign({group_cost[g], role[g]});
    for (auto m : p.groups[g]) sig.push_back(colour[m]);
    const auto it = first.try_emplace(sig, g).first;
    c.group_rep[g] = it->second;
    c.copies[it->second].push_back(g);
  }
  return c;
}

}  // namespace wallsim::engine
