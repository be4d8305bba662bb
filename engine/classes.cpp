#include "engine/classes.hpp"

#include <algorithm>
#include <bit>
#include <map>
#include <numeric>

#include "collectives/network_model.hpp"
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

/// The pairs of a group of k whose costs and links the classes compare, as offsets in ring
/// order: every pair for groups of up to 64 (every pair an all-to-all or a tree can use), the
/// ring neighbours and the member half-way round for larger ones (rings, halving-doubling).
void pair_offsets(std::size_t k, std::vector<std::size_t>& out) {
  out.clear();
  if (k <= 64) {
    for (std::size_t j = 1; j < k; ++j) out.push_back(j);
  } else {
    out = {1, k - 1, k / 2};
  }
}

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

namespace {

constexpr std::uint32_t kNoRank = ~std::uint32_t{0};
/// Routes (a connection's flows each) the refinement by links builds at most; past it the
/// classes by costs stand (RankClasses::exact false).
constexpr std::size_t kMaxRoutes = 4'000'000;

/// The connections between scale-up domains of a program (each group's member pairs whose
/// costs the classes compare, each rank's point-to-point peers, the background flows) and the
/// links they share, as flat lists (see Contention). A link only one GPU sends on, or only one
/// receives on (its ports; a domain's switch links, which carry only their GPU's own traffic),
/// tells nothing the GPU's colour does not, and is left out.
struct Shared {
  std::vector<std::uint64_t> kind;         ///< by connection: what it is, ends aside
  std::vector<std::uint32_t> src, dst;     ///< by connection: its ranks (kNoRank: background)
  std::vector<std::uint32_t> route_at{0};  ///< by connection: its shared links' range in `route`
  std::vector<std::uint32_t> route;        ///< shared links (indices into `base`), with repeats
  std::vector<std::uint64_t> base;         ///< by shared link: its bandwidth less the reserve
  std::vector<std::uint32_t> link_at;      ///< by shared link: its range in `crossing`
  std::vector<std::uint32_t> crossing;     ///< connections crossing each shared link, with repeats
  std::vector<std::vector<std::uint32_t>> sends, receives;  ///< by rank: its connections
};

}  // namespace

RankClasses classify(const Program& p, const topology::Topology& t, std::span<const double> speed,
                     const Contention& contention) {
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
  std::vector<bool> symmetric_group(p.groups.size(), false);  // every member sees the same costs
  {
    Ids<std::vector<std::uint64_t>> ids, rows;
    std::vector<std::uint64_t> sig, row;
    std::vector<std::size_t> offsets;
    for (std::uint32_t g = 0; g < p.groups.size(); ++g) {
      const auto& m = p.groups[g];
      const std::size_t k = m.size();
      pair_offsets(k, offsets);
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
      symmetric_group[g] = symmetric;
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

  std::vector<std::uint32_t> gs, ps;
  // Under contention, the connections between domains and the links they share.
  Shared sh;
  bool too_many = false;  // more routes than the refinement by links may build: classes by costs
  if (contention.on) {
    std::vector<std::vector<topology::LinkId>> routes;
    topology::Path path;
    // With bandwidth reserved on some links, connections inside a domain too (the reserve may
    // sit on a GPU's own port, which only the link's colour then tells apart).
    const bool reserves = std::any_of(contention.reserved_Bps.begin(), contention.reserved_Bps.end(), [](double x) { return x > 0.0; });
    std::size_t built = 0;
    auto connect = [&](std::uint64_t kind, std::uint32_t a, std::uint32_t b, std::uint64_t key) {
      const auto src = p.ranks[a].gpu, dst = p.ranks[b].gpu;
      const bool out = t.leaves_domain(src, dst);
      if (too_many || src == dst || (!out && !reserves)) return;
      std::vector<topology::LinkId> links;
      const std::uint32_t q = std::max<std::uint32_t>(1, contention.flows_per_connection);
      if (built + q > kMaxRoutes) {
        too_many = true;
        return;
      }
      built += q;
      for (std::uint32_t j = 0; j < q; ++j) {  // as the engine routes a connection's flows
        if (j == 0 || out) t.route_into(src, dst, j == 0 ? key : collectives::flow_key(key, j), path);
        links.insert(links.end(), path.begin(), path.end());
      }
      sh.kind.push_back(kind);
      sh.src.push_back(a);
      sh.dst.push_back(b);
      routes.push_back(std::move(links));
    };
    std::vector<std::size_t> offsets;
    for (std::uint32_t g = 0; g < p.groups.size(); ++g) {
      const auto& m = p.groups[g];
      const std::size_t k = m.size();
      pair_offsets(k, offsets);
      for (std::size_t a = 0; a < k; ++a) {
        if (m[a] >= n) continue;
        groups_of(m[a], gs);  // the group's place among its member's groups: its role
        const auto role = static_cast<std::uint64_t>(std::find(gs.begin(), gs.end(), g) - gs.begin());
        for (std::size_t q = 0; q < offsets.size(); ++q) {
          const std::uint32_t b = m[(a + offsets[q]) % k];
          if (b >= n) continue;
          // In a symmetric group (see member_cost) a member's place does not matter, nor which
          // of its pairs a connection is: they are told apart by where they go.
          const std::uint64_t place = symmetric_group[g] ? 0 : q + 1;
          connect(mix(mix(mix(mix(1, k), place), role), group_cost[g]), m[a], b, route_key(g, p.ranks[m[a]].gpu, p.ranks[b].gpu));
        }
      }
    }
    for (std::uint32_t r = 0; r < n; ++r) {
      peers_of(r, ps);
      for (std::size_t i = 0; i < ps.size(); ++i) {
        if (ps[i] < n) connect(mix(2, i), r, ps[i], route_key(kP2pKey, p.ranks[r].gpu, p.ranks[ps[i]].gpu));
      }
    }
    for (const auto& f : contention.background) {
      sh.kind.push_back(mix(mix(mix(mix(3, bits(f.bytes.value())), bits(f.start.value())), bits(f.multiplicity)),
                            f.latency ? bits(f.latency->value()) : ~std::uint64_t{0}));
      sh.src.push_back(kNoRank);
      sh.dst.push_back(kNoRank);
      routes.emplace_back(f.path.begin(), f.path.end());
    }
    if (too_many) {
      routes.clear();
      sh = Shared{};
    }
    // The links more than one GPU sends on and more than one receives on (or a background
    // flow crosses, or a reserve sits on).
    constexpr topology::NodeId kNone = ~topology::NodeId{0}, kMany = kNone - 1;
    std::vector<std::pair<topology::NodeId, topology::NodeId>> ends(t.num_links(), {kNone, kNone});
    for (std::size_t c = 0; c < routes.size(); ++c) {
      const bool bg = sh.src[c] == kNoRank;
      const topology::NodeId a = bg ? kMany : p.ranks[sh.src[c]].gpu, b = bg ? kMany : p.ranks[sh.dst[c]].gpu;
      for (auto l : routes[c]) {
        auto& [x, y] = ends[l];
        x = x == kNone || x == a ? a : kMany;
        y = y == kNone || y == b ? b : kMany;
      }
    }
    std::vector<std::uint32_t> index(t.num_links(), kNoRank);
    for (std::size_t l = 0; l < ends.size(); ++l) {
      const double reserved = l < contention.reserved_Bps.size() ? contention.reserved_Bps[l] : 0.0;
      const bool shared = ends[l].first == kMany && ends[l].second == kMany;
      if (!shared && !(reserved > 0.0 && ends[l].first != kNone)) continue;  // a reserve's link is told apart
      index[l] = static_cast<std::uint32_t>(sh.base.size());
      sh.base.push_back(bits(t.link(static_cast<topology::LinkId>(l)).bandwidth.value() - reserved));
    }
    std::vector<std::vector<std::uint32_t>> crossing(sh.base.size());
    sh.sends.resize(n);
    sh.receives.resize(n);
    for (std::size_t c = 0; c < routes.size(); ++c) {
      for (auto l : routes[c]) {
        if (index[l] == kNoRank) continue;
        sh.route.push_back(index[l]);
        crossing[index[l]].push_back(static_cast<std::uint32_t>(c));
      }
      sh.route_at.push_back(static_cast<std::uint32_t>(sh.route.size()));
      if (sh.src[c] != kNoRank) {
        sh.sends[sh.src[c]].push_back(static_cast<std::uint32_t>(c));
        sh.receives[sh.dst[c]].push_back(static_cast<std::uint32_t>(c));
      }
    }
    sh.link_at.push_back(0);
    for (const auto& x : crossing) {
      sh.crossing.insert(sh.crossing.end(), x.begin(), x.end());
      sh.link_at.push_back(static_cast<std::uint32_t>(sh.crossing.size()));
    }
  }
  std::vector<std::uint64_t> conn_colour(sh.kind.size()), link_colour(sh.base.size()), scratch_colours, rank_links;

  std::vector<std::uint32_t> colour(n);
  std::size_t colours = 0;
  {
    Ids<std::pair<std::uint64_t, std::uint64_t>> ids;
    for (std::uint32_t r = 0; r < n; ++r) {
      colour[r] = ids({src_hash[p.source_of(r)], bits(speed.empty() ? 1.0 : speed[r])});
    }
    colours = ids.size();
  }
  std::vector<std::uint64_t> sig;
  // Ops the ranks of one rank per class hold: what simulating them costs.
  auto simulated_ops = [&](const std::vector<std::uint32_t>& of, std::size_t count) {
    std::vector<bool> seen(count, false);
    std::size_t ops = 0;
    for (std::uint32_t r = 0; r < n; ++r) {
      if (seen[of[r]]) continue;
      seen[of[r]] = true;
      ops += p.ranks[p.source_of(r)].ops.size();
    }
    return ops;
  };
  // Refines `colour` until no class splits: by costs alone, then (under contention) by the
  // links too, unless that leaves more than the budget's ops to simulate.
  bool with_links = false;
  std::vector<std::uint32_t> by_costs;
  std::size_t by_costs_count = 0, budget = 0;
  bool exact = !too_many;
  while (true) {
    // Each connection's colour (its kind and its ends'), then each shared link's (its free
    // bandwidth and the colours of the connections crossing it).
    for (std::size_t c = 0; with_links && c < sh.kind.size(); ++c) {
      conn_colour[c] = mix(mix(sh.kind[c], sh.src[c] == kNoRank ? ~std::uint64_t{0} : colour[sh.src[c]]),
                           sh.dst[c] == kNoRank ? ~std::uint64_t{0} : colour[sh.dst[c]]);
    }
    for (std::size_t l = 0; with_links && l < sh.base.size(); ++l) {
      scratch_colours.clear();
      for (std::uint32_t x = sh.link_at[l]; x < sh.link_at[l + 1]; ++x) scratch_colours.push_back(conn_colour[sh.crossing[x]]);
      std::sort(scratch_colours.begin(), scratch_colours.end());
      std::uint64_t h = sh.base[l];
      for (auto x : scratch_colours) h = mix(h, x);
      link_colour[l] = h;
    }
    // A connection's view of the fabric: its kind and its shared links' colours.
    auto route_colour = [&](std::uint32_t c) {
      scratch_colours.clear();
      for (std::uint32_t x = sh.route_at[c]; x < sh.route_at[c + 1]; ++x) scratch_colours.push_back(link_colour[sh.route[x]]);
      std::sort(scratch_colours.begin(), scratch_colours.end());
      std::uint64_t h = sh.kind[c];
      for (auto x : scratch_colours) h = mix(h, x);
      return h;
    };
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
      if (with_links) {  // the links its sends and its receives cross, as multisets
        for (const auto* list : {&sh.sends[r], &sh.receives[r]}) {
          rank_links.clear();
          for (auto c : *list) rank_links.push_back(route_colour(c));
          std::sort(rank_links.begin(), rank_links.end());
          sig.push_back(rank_links.size());
          sig.insert(sig.end(), rank_links.begin(), rank_links.end());
        }
      }
      next[r] = ids(sig);
    }
    colour.swap(next);
    const bool stable = ids.size() == colours;  // refinement only splits: no split, stable
    colours = ids.size();
    if (with_links && simulated_ops(colour, colours) > budget) {
      colour = std::move(by_costs);
      colours = by_costs_count;
      exact = false;
      break;
    }
    if (!stable) continue;
    if (with_links || !contention.on || sh.kind.empty()) break;
    with_links = true;
    by_costs = colour;
    by_costs_count = colours;
    budget = std::max<std::size_t>(contention.max_ops, 4 * simulated_ops(colour, colours));
  }

  RankClasses c;
  c.exact = exact;
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
