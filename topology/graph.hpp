// A built fabric: a Boost.Graph compressed-sparse-row graph of endpoints (GPUs, wafer cores),
// switches and storage nodes, joined by directed links. A physical cable is two directed links
// (full duplex: the directions never share bandwidth), so every link has a reverse.
// Endpoints are nodes 0..N-1 in the builder's natural order. Link ids follow the order the
// builder adds cables in (cable c is links 2c and 2c + 1, each the other's reverse), so a
// family's router computes them from its own numbering, and a topology that holds only a part
// of the fabric (for one MPI rank) still names every link of the whole.
// Builders (fat_tree.cpp, ...) return a Topology; link models never know the family.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/graph/compressed_sparse_row_graph.hpp>

#include "core/units.hpp"

namespace wallsim::topology {

/// Largest fabric wallsim builds: nodes, and cables (each two directed links). A built cable
/// takes about 200 bytes (its ends, both links in the graph, routing tables), so the limits
/// keep the largest fabric near 2 GB; beyond them memory, not wallsim, would decide. A
/// 131,072-GPU rail-optimized Clos has 0.4M cables; a k=128 fat-tree (524,288 hosts) 1.6M.
#ifdef WALLSIM_MAX_NODES
constexpr long long kMaxNodes = WALLSIM_MAX_NODES;  // fuzz builds: see CMakeLists.txt
constexpr long long kMaxCables = 2 * WALLSIM_MAX_NODES;
#else
constexpr long long kMaxNodes = 16'000'000;
constexpr long long kMaxCables = 10'000'000;
#endif

using NodeId = std::uint32_t;
using LinkId = std::uint32_t;
using Path = std::vector<LinkId>;  ///< directed link ids from source to destination

enum class NodeKind : std::uint8_t { kEndpoint, kSwitch, kStorage };
enum class LinkClass : std::uint8_t { kScaleUp, kScaleOut, kWafer, kInterWafer, kStorage };

std::string_view to_string(NodeKind k);
std::string_view to_string(LinkClass c);

struct Node {
  NodeKind kind = NodeKind::kEndpoint;
  bool transit = false;     ///< may forward traffic (a switch, or a router-endpoint in a torus)
  std::uint8_t tier = 0;    ///< index into the topology's tier labels ("gpu", "leaf", ...)
  std::uint32_t index = 0;  ///< number within its tier; the name is label + index
};

struct Link {
  Bandwidth bandwidth;  ///< per direction
  Seconds latency;      ///< cable latency plus the latency of the switch it leaves
  EnergyPerBit energy;
  LinkClass cls = LinkClass::kScaleOut;
};

/// A link as the graph stores it: its properties and its id (see Topology).
struct Edge : Link {
  LinkId id = 0;
};

using Graph = boost::compressed_sparse_row_graph<boost::bidirectionalS, Node, Edge,
                                                 boost::no_property, std::uint32_t, std::uint32_t>;

/// Which share of a fabric a topology holds: the links of part `index` of `count` (see
/// TopologyBuilder::anchor). Part {0, 1} is the whole fabric.
struct Part {
  int index = 0;
  int count = 1;
};

class Router;

/// Facts a builder knows about its family that make metrics exact and fast.
struct FamilyInfo {
  std::string kind;  ///< "fat-tree", "torus", ...
  std::string spec;  ///< the parameters, as a spec string
  /// Endpoint orbits under the graph's automorphisms: (representative, orbit size). When
  /// given, metrics run one BFS per representative and stay exact.
  std::vector<std::pair<NodeId, double>> orbits;
  /// Bisection bandwidth (one direction) when the family has a closed form.
  std::optional<Bandwidth> bisection;
  /// Grid dimensions and wrap, for the exact closed-form hop metrics of torus and mesh.
  std::vector<int> grid_dims;
  bool grid_wrap = false;
  /// Endpoints per scale-up domain (NVSwitch, NVL72), numbered contiguously; 0 = none.
  std::size_t domain_size = 0;
  /// In-switch reduction of the scale-up switch (NVLink SHARP) at this fraction of its links'
  /// payload rate; 0 = none.
  double switch_reduction = 0.0;
  /// The endpoint split max-flow uses for bisection (1 = second half); empty = natural halves.
  std::vector<std::uint8_t> bisection_side;
  /// Flows the collective library opens per GPU pair between scale-up domains, each hashed
  /// onto its own route (a cluster's scale_out.flows_per_connection; 1 otherwise).
  std::uint32_t flows_per_connection = 1;
};

class Topology {
 public:
  /// The graph of the links this topology holds (all of them unless it is a part); the edge
  /// bundle carries each link's id.
  [[nodiscard]] const Graph& graph() const { return g_; }
  [[nodiscard]] std::size_t num_nodes() const { return num_vertices(g_); }
  /// Links of the whole fabric, held or not.
  [[nodiscard]] std::size_t num_links() const { return num_links_; }
  [[nodiscard]] std::size_t num_endpoints() const { return endpoints_; }
  [[nodiscard]] std::size_t num_switches() const { return switches_; }
  [[nodiscard]] std::size_t num_storage() const { return num_nodes() - endpoints_ - switches_; }
  /// Which part of the fabric this topology holds ({0, 1}: the whole).
  [[nodiscard]] Part part() const { return part_; }
  [[nodiscard]] bool whole() const { return part_.count == 1; }
  /// Whether this topology holds link l (always, when whole).
  [[nodiscard]] bool holds(LinkId l) const { return l < num_links_ && local_cable(l / 2) != kNotHeld; }

  [[nodiscard]] const Node& node(NodeId n) const { return g_[n]; }
  /// Properties of any link of the fabric, held or not.
  [[nodiscard]] const Link& link(LinkId l) const { return run_of(l).props[l & 1u]; }
  /// Ends of a held link (std::logic_error otherwise).
  [[nodiscard]] NodeId link_source(LinkId l) const {
    const auto& e = ends_[held_cable(l)];
    return (l & 1u) != 0 ? e.second : e.first;
  }
  [[nodiscard]] NodeId link_target(LinkId l) const {
    const auto& e = ends_[held_cable(l)];
    return (l & 1u) != 0 ? e.first : e.second;
  }
  [[nodiscard]] static LinkId reverse(LinkId l) { return l ^ 1u; }
  [[nodiscard]] std::string node_name(NodeId n) const;
  [[nodiscard]] const FamilyInfo& info() const { return info_; }
  [[nodiscard]] const std::vector<std::string>& tier_labels() const { return tiers_; }

  /// Marks a cable failed (both directions). Routes avoid it from then on.
  void fail_link(LinkId l);
  /// Marks a node failed: no route starts, ends or passes through it.
  void fail_node(NodeId n);
  [[nodiscard]] bool link_alive(LinkId l) const {
    return failed_link_.empty() || failed_link_[2 * std::size_t{held_cable(l)} + (l & 1u)] == 0;
  }
  [[nodiscard]] bool node_alive(NodeId n) const { return failed_node_.empty() || !failed_node_[n]; }
  /// Scales a cable's bandwidth (both directions) by `factor` in (0, 1]: a link that trained
  /// down to fewer lanes or a lower rate, or flaps. Factors compound.
  void degrade_link(LinkId l, double factor);
  /// Whether a link or node has failed or a link is degraded: routes of one cost level may
  /// then differ, and nothing that assumes they do not (cost levels, closed forms) holds.
  [[nodiscard]] bool has_failures() const { return !failed_link_.empty() || !failed_node_.empty() || degraded_; }
  /// The node named `name` (node_name), if any.
  [[nodiscard]] std::optional<NodeId> find_node(std::string_view name) const;
  /// The held link from `from` to `to`, if any.
  [[nodiscard]] std::optional<LinkId> find_link(NodeId from, NodeId to) const;

  /// The route of one flow: the family's router (ECMP by `flow_key`, dimension order, ...);
  /// around failures the shortest surviving paths, spread by the same hash. Throws
  /// wallsim::Error when failures disconnect the pair.
  [[nodiscard]] Path route(NodeId src, NodeId dst, std::uint64_t flow_key = 0) const;
  /// As route(), for adaptive families (UGAL) given the current load of each link in bytes.
  [[nodiscard]] Path route(NodeId src, NodeId dst, std::uint64_t flow_key,
                           const std::vector<double>& link_load) const;
  /// Every shortest surviving path (at most `limit`), in link-id order.
  [[nodiscard]] std::vector<Path> shortest_paths(NodeId src, NodeId dst, std::size_t limit) const;

  /// As route(), into a caller's buffer (no allocation once it has grown): for hot loops.
  void route_into(NodeId src, NodeId dst, std::uint64_t flow_key, Path& out) const;

  /// Sum of link latencies along a path.
  [[nodiscard]] Seconds path_latency(const Path& p) const;
  /// Smallest bandwidth along a path.
  [[nodiscard]] Bandwidth path_bandwidth(const Path& p) const;
  struct PathCost {
    Seconds latency;      ///< sum over the links
    Bandwidth bandwidth;  ///< bottleneck (zero for an empty path)
  };
  /// Both at once, from a compact per-link table (what alpha-beta costing needs).
  [[nodiscard]] PathCost path_cost(const Path& p) const;
  /// The cost of the route route_into() would give; on a healthy fabric with cost levels, a
  /// table lookup with no routing (`scratch` holds the route otherwise).
  [[nodiscard]] PathCost route_cost(NodeId src, NodeId dst, std::uint64_t flow_key, Path& scratch) const {
    const std::size_t level = cost_level(src, dst);
    if (level != kNoLevel) return level_cost_[level];
    route_into(src, dst, flow_key, scratch);
    return path_cost(scratch);
  }
  static constexpr std::size_t kNoLevel = ~std::size_t{0};
  /// The cost level of a route from src to dst (every route of one level costs the same:
  /// level_cost()), or kNoLevel when the fabric has no levels, has failures, or src or dst is
  /// not an endpoint.
  [[nodiscard]] std::size_t cost_level(NodeId src, NodeId dst) const {
    if (level_cost_.empty() || src == dst || src >= endpoints_ || dst >= endpoints_ || has_failures()) {
      return kNoLevel;
    }
    const std::uint32_t* a = &cost_levels_[src * num_levels_];
    const std::uint32_t* b = &cost_levels_[dst * num_levels_];
    std::size_t i = 0;
    while (i < num_levels_ && a[i] != b[i]) ++i;
    return i;
  }
  /// The group of `endpoint` at cost level `level` (see set_cost_levels); level + 1 <
  /// num_cost_levels() (the last level, nothing shared, has no groups).
  [[nodiscard]] std::uint32_t cost_group(NodeId endpoint, std::size_t level) const {
    return cost_levels_[endpoint * num_levels_ + level];
  }
  /// Number of cost levels (0 when the family has none); level i < num_cost_levels().
  [[nodiscard]] std::size_t num_cost_levels() const { return level_cost_.size(); }
  [[nodiscard]] PathCost level_cost(std::size_t level) const { return level_cost_[level]; }
  /// Cost levels of the family (builders call this after set_router): per level, a group id
  /// per endpoint, such that every route between two endpoints whose first shared group is
  /// at level i (or who share none) has the same latency and bottleneck bandwidth whatever
  /// the ECMP pick. One route per level is costed here.
  void set_cost_levels(std::vector<std::vector<std::uint32_t>> levels);
  /// Bandwidth (per direction) out of one group of cost level `level` toward the endpoints
  /// outside it, which the group's endpoints share: the uplinks of a rail leaf in a tapered
  /// Clos (spines x link bandwidth for the leaf's nodes_per_leaf GPUs). Traffic between
  /// endpoints whose first shared level is above `level` crosses it. Zero when the family
  /// gives none (the endpoints' own links are the narrowest). `level` < num_cost_levels() - 1.
  [[nodiscard]] Bandwidth level_egress(std::size_t level) const {
    return level < level_egress_.size() ? level_egress_[level] : Bandwidth{};
  }
  /// Builders with a taper set it after set_cost_levels: per level, every group's egress
  /// (every group of a level has the same).
  void set_level_egress(std::vector<Bandwidth> egress) { level_egress_ = std::move(egress); }
  /// Whether traffic from endpoint `a` to `b` leaves a's scale-up domain (always when the
  /// fabric has no domains): the one home of that test.
  [[nodiscard]] bool leaves_domain(NodeId a, NodeId b) const {
    const std::size_t d = info_.domain_size;
    return d == 0 || a / d != b / d;
  }
  /// The cluster's collective library opens `q` flows per connection (FamilyInfo).
  void set_flows_per_connection(std::uint32_t q) { info_.flows_per_connection = q; }
  /// Installs the family router (builders call this once link ids are final).
  void set_router(std::shared_ptr<const Router> r) { router_ = std::move(r); }
  /// Name of the family router ("ecmp-fat-tree", "dimension-order", ...).
  [[nodiscard]] std::string router_name() const;

 private:
  friend class TopologyBuilder;
  Topology() = default;
  void route_into(NodeId src, NodeId dst, std::uint64_t flow_key, const std::vector<double>* load,
                  Path& out) const;
  static constexpr std::uint32_t kNotHeld = ~std::uint32_t{0};
  /// Index among the held cables of cable c, or kNotHeld.
  [[nodiscard]] std::uint32_t local_cable(std::uint32_t c) const;
  [[nodiscard]] std::uint32_t held_cable(LinkId l) const;
  /// Cables [first, next run's first) share their properties: a family adds its cables kind
  /// by kind, so a fabric has a handful of runs whatever its size.
  struct Run {
    std::uint32_t first;  ///< first cable
    Link props[2];        ///< the cable's two directions (they differ by the switch they leave)
  };
  [[nodiscard]] const Run& run_of(LinkId l) const {
    if (runs_.size() == 1) return runs_.front();
    const std::uint32_t c = l / 2;
    auto it = std::upper_bound(runs_.begin(), runs_.end(), c, [](std::uint32_t x, const Run& r) { return x < r.first; });
    return *(it - 1);
  }
  Graph g_;
  std::size_t num_links_ = 0;
  Part part_;
  std::vector<std::pair<NodeId, NodeId>> ends_;  ///< per held cable: its first link's source, target
  std::vector<std::uint32_t> held_;              ///< the held cables, ascending (empty when whole)
  std::vector<Run> runs_;
  std::vector<std::string> tiers_;
  std::size_t endpoints_ = 0;
  std::size_t switches_ = 0;
  FamilyInfo info_;
  std::shared_ptr<const Router> router_;
  std::vector<std::uint32_t> cost_levels_;  ///< see set_cost_levels; endpoint-major
  std::size_t num_levels_ = 0;
  std::vector<PathCost> level_cost_;  ///< by first shared level; the last: none shared
  std::vector<Bandwidth> level_egress_;  ///< see level_egress
  std::vector<std::uint8_t> failed_link_;  ///< by held link (2 x held cable + direction)
  std::vector<std::uint8_t> failed_node_;
  bool degraded_ = false;
};

/// Collects nodes and cables, then freezes them into a Topology. Endpoints must be added
/// before any other node so that endpoint i is node i.
///
/// For a part {i, n} of the fabric (one MPI rank's), the endpoints are dealt out in n
/// contiguous ranges; a cable belongs to the part of its first end's owner, else its second's,
/// else part 0. An endpoint owns itself; a switch owns nothing unless the family anchors it to
/// an endpoint (a leaf to the first GPU of its rail group), so the cables of a rank's GPUs and
/// of the switches that serve only them stay together. Only the part's cables are stored; ids
/// and properties of every link are known all the same.
class TopologyBuilder {
 public:
  explicit TopologyBuilder(Part part = {}) : part_(part) {}
  /// A tier label ("gpu", "leaf"); returns its index for add_node.
  std::uint8_t tier(std::string label);
  /// A node; `latency` (a switch's forwarding latency) is added to every link leaving it.
  NodeId add_node(NodeKind kind, std::uint8_t tier, std::uint32_t index, bool transit,
                  Seconds latency = {});
  /// A switch's cables belong with `endpoint`'s (see the class comment); before its cables.
  void anchor(NodeId node, NodeId endpoint);
  /// Adds a cable as two directed links; returns the id of u->v (v->u is id + 1).
  LinkId add_cable(NodeId u, NodeId v, const Link& props);
  [[nodiscard]] std::size_t num_nodes() const { return nodes_.size(); }

  /// Freezes the graph.
  Topology finish(FamilyInfo info, std::shared_ptr<const Router> router);

 private:
  [[nodiscard]] int owner(NodeId n) const;
  Part part_;
  std::vector<Node> nodes_;
  std::vector<Seconds> node_latency_;
  std::vector<std::uint32_t> anchor_;  ///< per node: endpoint it goes with, or ~0
  std::size_t endpoints_ = 0;
  std::vector<std::string> tiers_;
  std::uint32_t cables_ = 0;
  std::vector<std::pair<NodeId, NodeId>> ends_;  ///< held cables
  std::vector<std::uint32_t> held_;
  std::vector<Topology::Run> runs_;
};

}  // namespace wallsim::topology
