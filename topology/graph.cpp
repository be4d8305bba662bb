#include "topology/graph.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <boost/range/iterator_range.hpp>

#include "core/error.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {

std::string_view to_string(NodeKind k) {
  switch (k) {
    case NodeKind::kEndpoint: return "endpoint";
    case NodeKind::kSwitch: return "switch";
    case NodeKind::kStorage: return "storage";
  }
  return "?";
}

std::string_view to_string(LinkClass c) {
  switch (c) {
    case LinkClass::kScaleUp: return "scale_up";
    case LinkClass::kScaleOut: return "scale_out";
    case LinkClass::kWafer: return "wafer";
    case LinkClass::kInterWafer: return "inter_wafer";
    case LinkClass::kStorage: return "storage";
  }
  return "?";
}

std::uint8_t TopologyBuilder::tier(std::string label) {
  for (std::size_t i = 0; i < tiers_.size(); ++i) {
    if (tiers_[i] == label) return static_cast<std::uint8_t>(i);
  }
  tiers_.push_back(std::move(label));
  return static_cast<std::uint8_t>(tiers_.size() - 1);
}

NodeId TopologyBuilder::add_node(NodeKind kind, std::uint8_t tier, std::uint32_t index,
                                 bool transit, Seconds latency) {
  if (kind == NodeKind::kEndpoint && !nodes_.empty() &&
      nodes_.back().kind != NodeKind::kEndpoint) {
    throw std::logic_error("TopologyBuilder: add every endpoint before the first switch");
  }
  nodes_.push_back(Node{kind, transit, tier, index});
  node_latency_.push_back(latency);
  return static_cast<NodeId>(nodes_.size() - 1);
}

std::uint32_t TopologyBuilder::add_cable(NodeId u, NodeId v, const Link& props) {
  const auto id = static_cast<std::uint32_t>(edges_.size());
  edges_.emplace_back(u, v);
  edges_.emplace_back(v, u);
  props_.push_back(props);
  props_.push_back(props);
  return id;
}

Topology TopologyBuilder::finish(FamilyInfo info, std::shared_ptr<const Router> router,
                                 std::vector<LinkId>* final_id) {
  const std::size_t n = nodes_.size();
  const std::size_t m = edges_.size();
  // Stable counting sort by source: link ids become CSR edge indices, grouped by source.
  std::vector<std::uint32_t> start(n + 1, 0);
  for (const auto& e : edges_) ++start[e.first + 1];
  for (std::size_t i = 0; i < n; ++i) start[i + 1] += start[i];
  std::vector<LinkId> to_final(m);
  {
    std::vector<std::uint32_t> next(start.begin(), start.end() - 1);
    for (std::size_t p = 0; p < m; ++p) to_final[p] = next[edges_[p].first]++;
  }
  std::vector<std::pair<NodeId, NodeId>> sorted(m);
  std::vector<Link> sorted_props(m);
  for (std::size_t p = 0; p < m; ++p) {
    sorted[to_final[p]] = edges_[p];
    sorted_props[to_final[p]] = props_[p];
    sorted_props[to_final[p]].latency += node_latency_[edges_[p].first];
  }
  // Each copy is freed as soon as the next one exists: the peak is the graph plus one copy.
  std::vector<std::pair<NodeId, NodeId>>().swap(edges_);
  std::vector<Link>().swap(props_);
  std::vector<Seconds>().swap(node_latency_);
  Topology t;
  t.g_ = Graph(boost::edges_are_unsorted_multi_pass, sorted.begin(), sorted.end(),
               sorted_props.begin(), n);
  std::vector<Link>().swap(sorted_props);
  for (std::size_t i = 0; i < n; ++i) t.g_[static_cast<NodeId>(i)] = nodes_[i];
  t.link_src_.resize(m);
  for (std::size_t l = 0; l < m; ++l) t.link_src_[l] = sorted[l].first;
  // Boost's CSR construction is a stable bucket sort; check that ids survived it.
  for (std::size_t l = 0; l < m; ++l) {
    const auto e = t.edge(static_cast<LinkId>(l));
    if (target(e, t.g_) != sorted[l].second) {
      throw std::logic_error("Topology: CSR edge order differs from link ids");
    }
  }
  std::vector<std::pair<NodeId, NodeId>>().swap(sorted);
  t.link_cost_.resize(m);
  for (std::size_t l = 0; l < m; ++l) {
    const Link& k = t.link(static_cast<LinkId>(l));
    t.link_cost_[l] = {k.latency.value(), k.bandwidth.value()};
  }
  t.reverse_.resize(m);
  for (std::size_t p = 0; p < m; ++p) t.reverse_[to_final[p]] = to_final[p ^ 1u];
  t.tiers_ = tiers_;
  t.endpoints_ = static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(),
                    [](const Node& x) { return x.kind == NodeKind::kEndpoint; }));
  t.switches_ = static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(),
                    [](const Node& x) { return x.kind == NodeKind::kSwitch; }));
  t.info_ = std::move(info);
  t.router_ = std::move(router);
  if (final_id != nullptr) *final_id = std::move(to_final);
  std::vector<Node>().swap(nodes_);
  return t;
}

std::string Topology::node_name(NodeId n) const {
  const Node& x = g_[n];
  return tiers_.at(x.tier) + std::to_string(x.index);
}

void Topology::fail_link(LinkId l) {
  if (l >= num_links()) throw Error("link " + std::to_string(l), "no such link");
  if (failed_link_.empty()) failed_link_.assign(num_links(), 0);
  failed_link_[l] = 1;
  failed_link_[reverse_[l]] = 1;
}

void Topology::fail_node(NodeId n) {
  if (n >= num_nodes()) throw Error("node " + std::to_string(n), "no such node");
  if (failed_node_.empty()) failed_node_.assign(num_nodes(), 0);
  if (failed_link_.empty()) failed_link_.assign(num_links(), 0);
  failed_node_[n] = 1;
  for (auto e : boost::make_iterator_range(out_edges(n, g_))) {
    const LinkId l = get(boost::edge_index, g_, e);
    failed_link_[l] = 1;
    failed_link_[reverse_[l]] = 1;
  }
}

namespace {
bool path_alive(const Topology& t, const Path& p) {
  if (!t.has_failures()) return true;
  for (LinkId l : p) {
    if (!t.link_alive(l)) return false;
  }
  return true;
}
}  // namespace

Path Topology::route(NodeId src, NodeId dst, std::uint64_t flow_key) const {
  static const std::vector<double> kNoLoad;
  return route(src, dst, flow_key, kNoLoad);
}

Path Topology::route(NodeId src, NodeId dst, std::uint64_t flow_key,
                     const std::vector<double>& link_load) const {
  Path p;
  route_into(src, dst, flow_key, link_load.empty() ? nullptr : &link_load, p);
  return p;
}

void Topology::route_into(NodeId src, NodeId dst, std::uint64_t flow_key, Path& out) const {
  route_into(src, dst, flow_key, nullptr, out);
}

void Topology::route_into(NodeId src, NodeId dst, std::uint64_t flow_key,
                          const std::vector<double>* load, Path& p) const {
  if (src >= num_nodes() || dst >= num_nodes()) {
    throw Error("route", "node " + std::to_string(std::max(src, dst)) + " does not exist (" +
                             std::to_string(num_nodes()) + " nodes)");
  }
  p.clear();
  if (src == dst) return;
  if (!node_alive(src) || !node_alive(dst)) {
    throw Error("route", "no route from " + node_name(src) + " to " + node_name(dst) + ": " +
                             node_name(node_alive(src) ? dst : src) + " has failed");
  }
  if (router_ && router_->route(*this, src, dst, flow_key, load, p) && path_alive(*this, p)) return;
  const auto dist = distances_to(*this, dst);
  if (!ecmp_shortest_path(*this, dist, src, dst, flow_key, p)) {
    throw Error("route", "no route from " + node_name(src) + " to " + node_name(dst) +
                             ": the failed links and nodes disconnect them");
  }
}

std::vector<Path> Topology::shortest_paths(NodeId src, NodeId dst, std::size_t limit) const {
  std::vector<Path> out;
  if (src == dst) return {Path{}};
  const auto dist = distances_to(*this, dst);
  if (dist[src] == kUnreachable) return out;
  Path cur;
  // Depth-first over the shortest-path DAG, in link-id order.
  auto dfs = [&](auto&& self, NodeId u) -> void {
    if (out.size() >= limit) return;
    if (u == dst) {
      out.push_back(cur);
      return;
    }
    for (auto e : boost::make_iterator_range(out_edges(u, g_))) {
      const LinkId l = get(boost::edge_index, g_, e);
      const NodeId v = target(e, g_);
      if (!link_alive(l) || dist[v] == kUnreachable || dist[v] + 1 != dist[u]) continue;
      if (v != dst && !g_[v].transit) continue;
      cur.push_back(l);
      self(self, v);
      cur.pop_back();
    }
  };
  dfs(dfs, src);
  return out;
}

Seconds Topology::path_latency(const Path& p) const { return path_cost(p).latency; }

Bandwidth Topology::path_bandwidth(const Path& p) const { return path_cost(p).bandwidth; }

Topology::PathCost Topology::path_cost(const Path& p) const {
  if (p.empty()) return {};
  double latency = 0.0, bandwidth = link_cost_[p.front()].bandwidth_Bps;
  for (LinkId l : p) {
    latency += link_cost_[l].latency_s;
    bandwidth = std::min(bandwidth, link_cost_[l].bandwidth_Bps);
  }
  return {Seconds::of(latency), Bandwidth::of(bandwidth)};
}

void Topology::set_cost_levels(std::vector<std::vector<std::uint32_t>> levels) {
  // Stored endpoint-major: route_cost reads one endpoint's groups from one cache line.
  num_levels_ = levels.size();
  cost_levels_.assign(num_levels_ * endpoints_, 0);
  for (std::size_t i = 0; i < num_levels_; ++i) {
    for (NodeId e = 0; e < endpoints_; ++e) cost_levels_[e * num_levels_ + i] = levels[i][e];
  }
  level_cost_.assign(num_levels_ + 1, PathCost{});
  // Endpoint 0 and the first endpoint at each level (a level no pair reaches is never asked).
  std::vector<bool> seen(level_cost_.size(), false);
  Path p;
  for (NodeId e = 1; e < endpoints_; ++e) {
    std::size_t i = 0;
    while (i < num_levels_ && levels[i][0] != levels[i][e]) ++i;
    if (seen[i]) continue;
    seen[i] = true;
    route_into(0, e, 0, p);
    level_cost_[i] = path_cost(p);
  }
}

std::string Topology::router_name() const {
  return router_ ? std::string(router_->name()) : std::string("ecmp-shortest-path");
}

}  // namespace wallsim::topology
