#include "parallelism/layout.hpp"

#include <algorithm>

namespace wallsim::parallelism {
namespace {

// The plan's order names each dimension by a distinct first letter (tp, cp, dp, pp; the plan
// rules refuse anything else), so one character picks it: this runs for every rank of every
// group a step costs.
int size_of(const Plan& p, const std::string& dim) {
  switch (dim.front()) {
    case 't': return p.tp;
    case 'c': return p.cp;
    case 'd': return p.dp;
    default: return p.pp;
  }
}
int& field(Coords& c, const std::string& dim) {
  switch (dim.front()) {
    case 't': return c.tp;
    case 'c': return c.cp;
    case 'd': return c.dp;
    default: return c.pp;
  }
}

}  // namespace

long long rank_of(const Plan& p, const Coords& c) {
  long long r = 0, stride = 1;
  Coords copy = c;
  for (const auto& d : p.order) {
    r += stride * field(copy, d);
    stride *= size_of(p, d);
  }
  return r;
}

Coords coords_of(const Plan& p, long long rank) {
  Coords c;
  for (const auto& d : p.order) {
    field(c, d) = static_cast<int>(rank % size_of(p, d));
    rank /= size_of(p, d);
  }
  return c;
}

std::vector<topology::NodeId> group_of(const Plan& p, const Coords& c, GroupKind kind) {
  std::vector<topology::NodeId> g;
  auto add = [&](Coords x) { g.push_back(static_cast<topology::NodeId>(rank_of(p, x))); };
  Coords x = c;
  switch (kind) {
    case GroupKind::kTp:
      for (x.tp = 0; x.tp < p.tp; ++x.tp) add(x);
      break;
    case GroupKind::kCp:
      for (x.cp = 0; x.cp < p.cp; ++x.cp) add(x);
      break;
    case GroupKind::kDp:
      for (x.dp = 0; x.dp < p.dp; ++x.dp) add(x);
      break;
    case GroupKind::kDpCp:
      for (x.dp = 0; x.dp < p.dp; ++x.dp) {
        for (x.cp = 0; x.cp < p.cp; ++x.cp) add(x);
      }
      break;
    case GroupKind::kDpShard:
      for (x.dp = c.dp - c.dp % p.dp_shard; x.dp < c.dp - c.dp % p.dp_shard + p.dp_shard; ++x.dp) {
        for (x.cp = 0; x.cp < p.cp; ++x.cp) add(x);
      }
      break;
    case GroupKind::kDpReplicate:
      for (x.dp = c.dp % p.dp_shard; x.dp < p.dp; x.dp += p.dp_shard) add(x);
      break;
    case GroupKind::kExpertDpShard:
    case GroupKind::kExpertDpReplicate: {
      const auto all = group_of(p, c, GroupKind::kExpertDp);
      const auto me = static_cast<std::size_t>(std::find(all.begin(), all.end(), static_cast<topology::NodeId>(rank_of(p, c))) - all.begin());
      const std::size_t part = all.size() / static_cast<std::size_t>(p.dp / p.dp_shard);  // plan.cpp checks it divides
      for (std::size_t k = 0; k < all.size(); ++k) {
        const bool same = kind == GroupKind::kExpertDpShard ? k / part == me / part : k % part == me % part;
        if (same) g.push_back(all[k]);
      }
      break;
    }
    case GroupKind::kEp:
    case GroupKind::kExpertDp: {
      // MoE folding: the flattened index f = tp + tp_size (cp + cp_size dp) splits as
      // etp fastest, then ep, then expert-dp. EP members are etp apart; expert-DP members
      // etp x ep apart.
      auto set = [&](int i) {
        x.tp = i % p.tp;
        x.cp = (i / p.tp) % p.cp;
        x.dp = i / (p.tp * p.cp);
        add(x);
      };
      const int f = c.tp + p.tp * (c.cp + p.cp * c.dp);
      const int stride = kind == GroupKind::kEp ? p.etp : p.expert_shards();
      const int span = kind == GroupKind::kEp ? p.expert_shards() : p.tp * p.cp * p.dp;
      const int base = f - f % span + f % stride;
      for (int i = base; i < f - f % span + span; i += stride) set(i);
      break;
    }
  }
  return g;
}

std::vector<std::vector<topology::NodeId>> groups_in_stage(const Plan& p, int stage, GroupKind kind) {
  std::vector<std::vector<topology::NodeId>> out;
  std::vector<char> seen(static_cast<std::size_t>(p.tp) * p.cp * p.dp * p.pp, 0);
  for (int d = 0; d < p.dp; ++d) {
    for (int c = 0; c < p.cp; ++c) {
      for (int t = 0; t < p.tp; ++t) {
        const Coords x{t, c, d, stage};
        if (seen[static_cast<std::size_t>(rank_of(p, x))] != 0) continue;
        auto g = group_of(p, x, kind);
        for (auto r : g) seen[r] = 1;
        out.push_back(std::move(g));
      }
    }
  }
  return out;
}

}  // namespace wallsim::parallelism
