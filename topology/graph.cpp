#include "topology/graph.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

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
  // Builders check their counts first (check_size); this catches one that did not, with
  // room for a scale-up layer on a fabric at the limit.
  if (nodes_.size() >= 2 * static_cast<std::size_t>(kMaxNodes)) {
    throw Error("topology", "more than " + std::to_string(2 * kMaxNodes) + " nodes");
  }
  if (kind == NodeKind::kEndpoint) ++endpoints_;
  nodes_.push_back(Node{kind, transit, tier, index});
  node_latency_.push_back(latency);
  anchor_.push_back(kind == NodeKind::kEndpoint ? static_cast<std::uint32_t>(nodes_.size() - 1) : ~std::uint32_t{0});
  return static_cast<NodeId>(nodes_.size() - 1);
}

void TopologyBuilder::anchor(NodeId node, NodeId endpoint) {
  if (endpoint >= endpoints_) throw std::logic_error("TopologyBuilder::anchor: not an endpoint");
  anchor_.at(node) = endpoint;
}

int TopologyBuilder::owner(NodeId n) const {
  const std::uint32_t e = anchor_[n];
  if (e == ~std::uint32_t{0}) return -1;
  return static_cast<int>(static_cast<std::uint64_t>(e) * static_cast<std::uint64_t>(part_.count) / endpoints_);
}

LinkId TopologyBuilder::add_cable(NodeId u, NodeId v, const Link& props) {
  const std::uint32_t c = cables_++;
  if (cables_ > std::min<std::uint64_t>(std::numeric_limits<LinkId>::max() / 2, 2 * kMaxCables)) {
    throw Error("topology", "more than " + std::to_string(2 * kMaxCables) + " cables");
  }
  Link fwd = props, back = props;
  fwd.latency += node_latency_.at(u);
  back.latency += node_latency_.at(v);
  auto same = [](const Link& a, const Link& b) {
    return a.bandwidth == b.bandwidth && a.latency == b.latency && a.energy == b.energy && a.cls == b.cls;
  };
  if (runs_.empty() || !same(runs_.back().props[0], fwd) || !same(runs_.back().props[1], back)) {
    runs_.push_back({c, {fwd, back}});
  }
  int o = owner(u);
  if (o < 0) o = owner(v);
  if (o < 0) o = 0;
  if (o == part_.index) {
    ends_.emplace_back(u, v);
    if (part_.count > 1) held_.push_back(c);
  }
  return 2 * c;
}

Topology TopologyBuilder::finish(FamilyInfo info, std::shared_ptr<const Router> router) {
  const std::size_t n = nodes_.size();
  Topology t;
  t.part_ = part_;
  t.num_links_ = 2 * std::size_t{cables_};
  t.runs_ = std::move(runs_);
  {
    // The held links, both directions of each held cable; Boost sorts them by source.
    std::vector<std::pair<NodeId, NodeId>> pairs;
    std::vector<Edge> props;
    pairs.reserve(2 * ends_.size());
    props.reserve(2 * ends_.size());
    for (std::size_t k = 0; k < ends_.size(); ++k) {
      const auto c = static_cast<LinkId>(held_.empty() ? k : held_[k]);
      for (LinkId d = 0; d < 2; ++d) {
        const LinkId id = 2 * c + d;
        pairs.emplace_back(d == 0 ? ends_[k] : std::make_pair(ends_[k].second, ends_[k].first));
        Edge e;
        static_cast<Link&>(e) = t.link(id);
        e.id = id;
        props.push_back(e);
      }
    }
    t.g_ = Graph(boost::edges_are_unsorted_multi_pass, pairs.begin(), pairs.end(), props.begin(), n);
  }
  for (std::size_t i = 0; i < n; ++i) t.g_[static_cast<NodeId>(i)] = nodes_[i];
  t.ends_ = std::move(ends_);
  t.held_ = std::move(held_);
  t.tiers_ = tiers_;
  t.endpoints_ = endpoints_;
  t.switches_ = static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(),
                    [](const Node& x) { return x.kind == NodeKind::kSwitch; }));
  t.info_ = std::move(info);
  t.router_ = std::move(router);
  std::vector<Node>().swap(nodes_);
  std::vector<Seconds>().swap(node_latency_);
  std::vector<std::uint32_t>().swap(anchor_);
  return t;
}

std::uint32_t Topology::local_cable(std::uint32_t c) const {
  if (held_.empty()) return part_.count == 1 ? c : kNotHeld;
  const auto it = std::lower_bound(held_.begin(), held_.end(), c);
  return it != held_.end() && *it == c ? static_cast<std::uint32_t>(it - held_.begin()) : kNotHeld;
}

std::uint32_t Topology::held_cable(LinkId l) const {
  const std::uint32_t k = l < num_links_ ? local_cable(l / 2) : kNotHeld;
  if (k == kNotHeld) {
    throw std::logic_error("Topology: link " + std::to_string(l) + " is not held by part " +
                           std::to_string(part_.index) + " of " + std::to_string(part_.count));
  }
  return k;
}

std::string Topology::node_name(NodeId n) const {
  const Node& x = g_[n];
  return tiers_.at(x.tier) + std::to_string(x.index);
}

void Topology::fail_link(LinkId l) {
  if (l >= num_links()) throw Error("link " + std::to_string(l), "no such link");
  if (failed_link_.empty()) failed_link_.assign(2 * ends_.size(), 0);
  const std::size_t c = held_cable(l);
  failed_link_[2 * c] = 1;
  failed_link_[2 * c + 1] = 1;
}

void Topology::degrade_link(LinkId l, double factor) {
  if (l >= num_links()) throw Error("link " + std::to_string(l), "no such link");
  if (!(factor > 0.0 && factor <= 1.0)) throw std::logic_error("degrade_link: factor outside (0, 1]");
  // The cable gets a run of its own: [first, c) keeps the old run, [c, c + 1) the degraded
  // properties, [c + 1, next run) the old ones again.
  const std::uint32_t c = l / 2;
  const auto it = std::upper_bound(runs_.begin(), runs_.end(), c, [](std::uint32_t x, const Run& r) { return x < r.first; });
  const auto k = static_cast<std::size_t>(it - runs_.begin()) - 1;
  const Run old = runs_[k];
  const std::uint32_t next = k + 1 < runs_.size() ? runs_[k + 1].first : static_cast<std::uint32_t>(num_links_ / 2);
  Run mine{c, {old.props[0], old.props[1]}};
  for (Link& d : mine.props) d.bandwidth = d.bandwidth * factor;
  std::vector<Run> split;
  if (old.first < c) split.push_back(old);
  split.push_back(mine);
  if (c + 1 < next) split.push_back(Run{c + 1, {old.props[0], old.props[1]}});
  runs_.erase(runs_.begin() + static_cast<std::ptrdiff_t>(k));
  runs_.insert(runs_.begin() + static_cast<std::ptrdiff_t>(k), split.begin(), split.end());
  // The graph's edge bundles carry the properties too (GraphML export reads them).
  if (holds(l)) {
    for (LinkId x : {l, reverse(l)}) {
      for (auto e : boost::make_iterator_range(out_edges(link_source(x), g_))) {
        if (g_[e].id == x) g_[e].bandwidth = link(x).bandwidth;
      }
    }
  }
  degraded_ = true;
}

std::optional<NodeId> Topology::find_node(std::string_view name) const {
  for (NodeId v = 0; v < num_nodes(); ++v) {
    if (node_name(v) == name) return v;
  }
  return std::nullopt;
}

std::optional<LinkId> Topology::find_link(NodeId from, NodeId to) const {
  for (auto e : boost::make_iterator_range(out_edges(from, g_))) {
    if (target(e, g_) == to) return g_[e].id;
  }
  return std::nullopt;
}

void Topology::fail_node(NodeId n) {
  if (n >= num_nodes()) throw Error("node " + std::to_string(n), "no such node");
  if (failed_node_.empty()) failed_node_.assign(num_nodes(), 0);
  if (failed_link_.empty()) failed_link_.assign(2 * ends_.size(), 0);
  failed_node_[n] = 1;
  for (auto e : boost::make_iterator_range(out_edges(n, g_))) fail_link(g_[e].id);
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
      const LinkId l = g_[e].id;
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
  double latency = 0.0, bandwidth = std::numeric_limits<double>::infinity();
  for (LinkId l : p) {
    const Link& k = link(l);
    latency += k.latency.value();
    bandwidth = std::min(bandwidth, k.bandwidth.value());
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
  // One pair per level: each endpoint with the first endpoint of its group at each level, and
  // with endpoint 0 (the "nothing shared" level). Endpoint 0 alone is not enough when the
  // levels do not nest (scale-up domains of 12 GPUs over leaf groups of 8: the pairs that
  // first share a leaf group are GPUs 8-11 with 12-15), and a level no pair reaches is never
  // asked for.
  std::vector<std::vector<NodeId>> first(num_levels_);
  for (std::size_t i = 0; i < num_levels_; ++i) {
    const std::uint32_t top = levels[i].empty() ? 0 : *std::max_element(levels[i].begin(), levels[i].end());
    first[i].assign(std::size_t{top} + 1, static_cast<NodeId>(endpoints_));
    for (NodeId e = static_cast<NodeId>(endpoints_); e-- > 0;) first[i][levels[i][e]] = e;
  }
  auto shared_level = [&](NodeId a, NodeId b) {
    std::size_t i = 0;
    while (i < num_levels_ && levels[i][a] != levels[i][b]) ++i;
    return i;
  };
  std::vector<bool> seen(level_cost_.size(), false);
  std::size_t found = 0;
  Path p;
  for (NodeId e = 1; e < endpoints_ && found < seen.size(); ++e) {
    for (std::size_t k = 0; k <= num_levels_; ++k) {
      const NodeId a = k < num_levels_ ? first[k][levels[k][e]] : 0;
      if (a == e) continue;
      const std::size_t i = shared_level(a, e);
      if (seen[i]) continue;
      seen[i] = true;
      ++found;
      route_into(a, e, 0, p);
      level_cost_[i] = path_cost(p);
    }
  }
}

std::string Topology::router_name() const {
  return router_ ? std::string(router_->name()) : std::string("ecmp-shortest-path");
}

}  // namespace wallsim::topology
