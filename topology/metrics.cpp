#include "topology/metrics.hpp"

#include <algorithm>
#include <limits>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/boykov_kolmogorov_max_flow.hpp>
#include <boost/range/iterator_range.hpp>

namespace wallsim::topology {
namespace {

constexpr std::uint32_t kInf = std::numeric_limits<std::uint32_t>::max();

struct HopSums {
  double pairs = 0.0, unreachable = 0.0, hops = 0.0, paths = 0.0;
  std::uint32_t diameter = 0;
};

/// BFS from one endpoint, counting shortest paths; only transit nodes forward.
class PathCounter {
 public:
  explicit PathCounter(const Topology& t)
      : t_(t), dist_(t.num_nodes(), kInf), sigma_(t.num_nodes(), 0.0) {}

  void add_source(NodeId s, double weight, HopSums& out) {
    const Graph& g = t_.graph();
    for (NodeId v : seen_) {
      dist_[v] = kInf;
      sigma_[v] = 0.0;
    }
    seen_.clear();
    dist_[s] = 0;
    sigma_[s] = 1.0;
    seen_.push_back(s);
    for (std::size_t head = 0; head < seen_.size(); ++head) {
      const NodeId u = seen_[head];
      if (u != s && !t_.node(u).transit) continue;
      for (auto e : boost::make_iterator_range(out_edges(u, g))) {
        const NodeId v = target(e, g);
        if (!t_.link_alive(g[e].id)) continue;
        if (dist_[v] == kInf) {
          dist_[v] = dist_[u] + 1;
          sigma_[v] = sigma_[u];
          seen_.push_back(v);
        } else if (dist_[v] == dist_[u] + 1) {
          sigma_[v] = std::min(kPathCountCap, sigma_[v] + sigma_[u]);
        }
      }
    }
    const std::size_t n = t_.num_endpoints();
    double hops = 0.0, paths = 0.0, reached = 0.0;
    for (NodeId v = 0; v < n; ++v) {
      if (v == s || dist_[v] == kInf) continue;
      hops += dist_[v];
      paths += sigma_[v];
      reached += 1.0;
      out.diameter = std::max(out.diameter, dist_[v]);
    }
    out.pairs += weight * reached;
    out.unreachable += weight * (static_cast<double>(n - 1) - reached);
    out.hops += weight * hops;
    out.paths += weight * paths;
  }

 private:
  const Topology& t_;
  std::vector<std::uint32_t> dist_;
  std::vector<double> sigma_;
  std::vector<NodeId> seen_;
};

/// Exact hop metrics of a grid: distances add up over dimensions, so the sum over all
/// ordered pairs is sum_i S_i (N/d_i)^2 with S_i the sum over one dimension's pairs.
void grid_hops(const std::vector<int>& dims, bool wrap, Metrics& m) {
  double n = 1.0;
  for (int d : dims) n *= d;
  double total = 0.0;
  int diameter = 0;
  for (int d : dims) {
    double s = 0.0;
    int far = 0;
    for (int delta = 0; delta < d; ++delta) {
      // Ordered pairs (x, y) with y - x = delta (mod d when wrapping).
      const int dist = wrap ? std::min(delta, d - delta) : delta;
      const double count = wrap ? d : 2.0 * (d - delta) / (delta == 0 ? 2.0 : 1.0);
      s += count * dist;
      far = std::max(far, dist);
    }
    total += s * (n / d) * (n / d);
    diameter += far;
  }
  m.diameter_hops = diameter;
  m.avg_hops = n > 1 ? total / (n * (n - 1)) : 0.0;
}

}  // namespace

Bandwidth max_flow_cut(const Topology& t, const std::vector<std::uint8_t>& side) {
  using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
  using FlowGraph = boost::adjacency_list<
      boost::vecS, boost::vecS, boost::directedS,
      boost::property<boost::vertex_color_t, boost::default_color_type,
                      boost::property<boost::vertex_distance_t, long,
                                      boost::property<boost::vertex_predecessor_t,
                                                      Traits::edge_descriptor>>>,
      boost::property<boost::edge_capacity_t, double,
                      boost::property<boost::edge_residual_capacity_t, double,
                                      boost::property<boost::edge_reverse_t,
                                                      Traits::edge_descriptor>>>>;
  const std::size_t n = t.num_nodes();
  FlowGraph fg(n + 2);
  const auto src = static_cast<Traits::vertex_descriptor>(n);
  const auto snk = static_cast<Traits::vertex_descriptor>(n + 1);
  auto cap = get(boost::edge_capacity, fg);
  auto rev = get(boost::edge_reverse, fg);
  auto add_arc = [&](std::size_t u, std::size_t v, double c) {
    auto e = add_edge(u, v, fg).first;
    auto r = add_edge(v, u, fg).first;
    cap[e] = c;
    cap[r] = 0.0;
    rev[e] = r;
    rev[r] = e;
  };
  double total = 0.0;
  const std::size_t eps = t.num_endpoints();
  auto on_side = [&](NodeId v, std::uint8_t s) {
    return v < eps && side[v] == s && !t.node(v).transit;
  };
  for (LinkId l = 0; l < t.num_links(); ++l) {
    if (!t.link_alive(l)) continue;
    const NodeId u = t.link_source(l), v = t.link_target(l);
    // A GPU does not forward: no flow into a source-side endpoint or out of a sink-side one.
    if (on_side(v, 0) || on_side(u, 1)) continue;
    const double c = t.link(l).bandwidth.value();
    total += c;
    add_arc(u, v, c);
  }
  for (NodeId v = 0; v < eps; ++v) {
    if (side[v] == 0) add_arc(src, v, total + 1.0);
    else add_arc(v, snk, total + 1.0);
  }
  const double flow = boost::boykov_kolmogorov_max_flow(fg, src, snk);
  return Bandwidth::of(flow);
}

Metrics compute_metrics(const Topology& t, const MetricsOptions& opt) {
  Metrics m;
  m.endpoints = t.num_endpoints();
  m.switches = t.num_switches();
  m.storage = t.num_storage();
  m.links = t.num_links();
  const FamilyInfo& info = t.info();
  const std::size_t n = m.endpoints;

  std::vector<std::pair<NodeId, double>> sources = info.orbits;
  bool sampled = false;
  if (t.has_failures() || sources.empty()) {
    sources.clear();
    if (n <= opt.exact_sources_limit) {
      for (NodeId v = 0; v < n; ++v) sources.emplace_back(v, 1.0);
    } else {
      sampled = true;
      // Fewer sources on huge graphs: about sample_visits node visits in all.
      const std::size_t by_budget = std::max<std::size_t>(4, opt.sample_visits / t.num_nodes());
      const std::size_t k = std::min({opt.sample_sources, by_budget, n});
      for (std::size_t i = 0; i < k; ++i) {
        sources.emplace_back(static_cast<NodeId>(i * n / k), static_cast<double>(n) / k);
      }
    }
  }
  if (n > 1) {
    HopSums sums;
    PathCounter counter(t);
    for (auto [s, w] : sources) counter.add_source(s, w, sums);
    m.diameter_hops = static_cast<int>(sums.diameter);
    m.avg_hops = sums.pairs > 0.0 ? sums.hops / sums.pairs : 0.0;
    m.path_diversity = sums.pairs > 0.0 ? sums.paths / sums.pairs : 0.0;
    m.unreachable_pairs = sums.unreachable;
    const bool exact_grid = !info.grid_dims.empty() && !t.has_failures();
    if (exact_grid) grid_hops(info.grid_dims, info.grid_wrap, m);
    if (sampled) {
      if (!exact_grid) m.estimated = {"diameter_hops", "avg_hops"};
      m.estimated.emplace_back("path_diversity");
      if (m.unreachable_pairs > 0.0) m.estimated.emplace_back("unreachable_pairs");
    }
  }

  if (info.bisection && !t.has_failures()) {
    m.bisection = info.bisection;
    m.bisection_method = "closed form";
  } else if (t.num_nodes() <= opt.maxflow_node_limit && n >= 2) {
    std::vector<std::uint8_t> side = info.bisection_side;
    if (side.size() != n) {
      side.assign(n, 0);
      for (std::size_t v = n / 2; v < n; ++v) side[v] = 1;
    }
    m.bisection = max_flow_cut(t, side);
    m.bisection_method = "max-flow";
  } else {
    m.bisection_method = "not computed";
  }
  return m;
}

}  // namespace wallsim::topology
