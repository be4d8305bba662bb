#include "topology/routing.hpp"

#include <boost/range/iterator_range.hpp>

namespace wallsim::topology {

std::uint64_t ecmp_hash(std::uint64_t key, NodeId src, NodeId dst, std::uint64_t hop) {
  std::uint64_t z = key * 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(src) << 32 | dst) ^
                    (hop + 1) * 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<std::uint32_t> distances_to(const Topology& t, NodeId dst) {
  const Graph& g = t.graph();
  std::vector<std::uint32_t> dist(t.num_nodes(), kUnreachable);
  std::vector<NodeId> frontier{dst};
  dist[dst] = 0;
  // Reverse BFS: a node u reaches dst through v only if v is dst or may forward traffic.
  for (std::size_t head = 0; head < frontier.size(); ++head) {
    const NodeId v = frontier[head];
    if (v != dst && !t.node(v).transit) continue;
    for (auto e : boost::make_iterator_range(in_edges(v, g))) {
      const NodeId u = source(e, g);
      const LinkId l = g[e].id;
      if (dist[u] != kUnreachable || !t.link_alive(l) || !t.node_alive(u)) continue;
      dist[u] = dist[v] + 1;
      frontier.push_back(u);
    }
  }
  return dist;
}

bool ecmp_shortest_path(const Topology& t, const std::vector<std::uint32_t>& dist, NodeId src,
                        NodeId dst, std::uint64_t key, Path& out) {
  out.clear();
  if (dist[src] == kUnreachable) return false;
  const Graph& g = t.graph();
  NodeId u = src;
  std::vector<LinkId> next;
  for (std::uint64_t hop = 0; u != dst; ++hop) {
    next.clear();
    for (auto e : boost::make_iterator_range(out_edges(u, g))) {
      const LinkId l = g[e].id;
      const NodeId v = target(e, g);
      if (!t.link_alive(l) || dist[v] == kUnreachable || dist[v] + 1 != dist[u]) continue;
      if (v == dst || t.node(v).transit) next.push_back(l);
    }
    if (next.empty()) return false;  // cannot happen for a consistent distance table
    const LinkId pick = next[ecmp_hash(key, src, dst, hop) % next.size()];
    out.push_back(pick);
    u = t.link_target(pick);
  }
  return true;
}

}  // namespace wallsim::topology
