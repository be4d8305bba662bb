// Torus and mesh fabrics of router-endpoints (TPU pods, wafer-scale cores), routed in
// dimension order: all moves in dimension 0, then 1, ...; on a ring dimension the shorter
// way round (ties go the positive way).
#include <numeric>

#include "core/error.hpp"
#include "topology/families.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {
namespace {

constexpr LinkId kNoLink = 0xFFFFFFFFu;

struct GridTables {
  std::vector<int> dims;
  bool wrap = true;
  long long per_grid = 0;  // nodes in one grid (one wafer)
  int grids = 1;           // wafers
  std::vector<LinkId> plus, minus;  // [(node) * D + dim]
  // Wafer I/O: per wafer, the links between west-edge core (0, y) and its I/O node,
  // and between the I/O node and the switch.
  std::vector<LinkId> edge_to_io, io_to_edge;  // [(wafer * Y) + y]
  std::vector<LinkId> io_up, io_down;          // [wafer]
};

class DimensionOrderRouter final : public Router {
 public:
  explicit DimensionOrderRouter(GridTables t) : t_(std::move(t)) {}

 private:
  void walk(long long base, std::vector<int> at, const std::vector<int>& to, Path& out) const {
    const auto D = t_.dims.size();
    long long stride = 1;
    std::vector<long long> strides(D);
    for (std::size_t i = 0; i < D; ++i) {
      strides[i] = stride;
      stride *= t_.dims[i];
    }
    long long node = base;
    for (std::size_t i = 0; i < D; ++i) node += at[i] * strides[i];
    for (std::size_t i = 0; i < D; ++i) {
      const int d = t_.dims[i];
      int fwd = ((to[i] - at[i]) % d + d) % d;
      int steps = to[i] - at[i];
      if (t_.wrap) steps = fwd <= d - fwd ? fwd : fwd - d;
      while (steps != 0) {
        const int dir = steps > 0 ? 1 : -1;
        out.push_back((dir > 0 ? t_.plus : t_.minus)[static_cast<std::size_t>(node) * D + i]);
        int next = at[i] + dir;
        if (next == d) next = 0;
        if (next < 0) next = d - 1;
        node += (next - at[i]) * strides[i];
        at[i] = next;
        steps -= dir;
      }
    }
  }
  [[nodiscard]] std::vector<int> coords(long long local) const {
    std::vector<int> c(t_.dims.size());
    for (std::size_t i = 0; i < t_.dims.size(); ++i) {
      c[i] = static_cast<int>(local % t_.dims[i]);
      local /= t_.dims[i];
    }
    return c;
  }
  bool do_route(const Topology&, NodeId src, NodeId dst, std::uint64_t,
                const std::vector<double>*, Path& out) const override {
    const long long total = t_.per_grid * t_.grids;
    if (src >= total || dst >= total) return false;
    const long long ws = src / t_.per_grid, wt = dst / t_.per_grid;
    auto cs = coords(src % t_.per_grid), ct = coords(dst % t_.per_grid);
    if (ws == wt) {
      walk(ws * t_.per_grid, cs, ct, out);
      return true;
    }
    // Across wafers: west along the row to the edge, out through I/O, in on the other wafer.
    const int Y = t_.dims[1];
    auto edge_s = cs;
    edge_s[0] = 0;
    walk(ws * t_.per_grid, cs, edge_s, out);
    out.push_back(t_.edge_to_io[ws * Y + cs[1]]);
    out.push_back(t_.io_up[ws]);
    out.push_back(t_.io_down[wt]);
    out.push_back(t_.io_to_edge[wt * Y + ct[1]]);
    auto edge_t = ct;
    edge_t[0] = 0;
    walk(wt * t_.per_grid, edge_t, ct, out);
    return true;
  }
  [[nodiscard]] std::string_view do_name() const override { return "dimension-order"; }
  GridTables t_;
};

/// Adds the cables of one grid whose node 0 is `base`; fills plus/minus.
void add_grid(TopologyBuilder& b, NodeId base, const std::vector<int>& dims, bool wrap,
              const Link& link, GridTables& t) {
  const auto D = dims.size();
  long long n = 1;
  for (int d : dims) n *= d;
  long long stride = 1;
  for (std::size_t i = 0; i < D; ++i) {
    const int d = dims[i];
    for (long long v = 0; v < n; ++v) {
      const int x = static_cast<int>((v / stride) % d);
      const bool last = x == d - 1;
      if (d == 1 || (last && !wrap) || (d == 2 && wrap && x == 1)) continue;
      const long long w = last ? v - static_cast<long long>(x) * stride : v + stride;
      const auto id = b.add_cable(base + static_cast<NodeId>(v), base + static_cast<NodeId>(w), link);
      t.plus[(base + v) * D + i] = id;
      t.minus[(base + w) * D + i] = id + 1;
      if (d == 2 && wrap) {  // one cable serves both directions round a 2-ring
        t.minus[(base + v) * D + i] = id;
        t.plus[(base + w) * D + i] = id + 1;
      }
    }
    stride *= d;
  }
}

long long product(const std::vector<int>& dims) {
  return std::accumulate(dims.begin(), dims.end(), 1LL, std::multiplies<>());
}

}  // namespace

Topology build_torus(const TorusParams& p) {
  if (p.dims.empty()) throw Error("torus.dims", "needs at least one dimension");
  for (int d : p.dims) {
    if (d < 1) throw Error("torus.dims", "every dimension must be at least 1");
  }
  long double size = 1;
  for (int d : p.dims) size *= d;
  check_size("torus.dims", size, size * static_cast<long double>(p.dims.size()));  // a cable per dimension
  const long long n = product(p.dims);
  const auto D = p.dims.size();
  TopologyBuilder b;
  const auto t_ep = b.tier("ep");
  for (long long i = 0; i < n; ++i) b.add_node(NodeKind::kEndpoint, t_ep, i, true);
  GridTables t;
  t.dims = p.dims;
  t.wrap = p.wrap;
  t.per_grid = n;
  t.plus.assign(n * D, kNoLink);
  t.minus.assign(n * D, kNoLink);
  add_grid(b, 0, p.dims, p.wrap, make_link(p.link, LinkClass::kScaleOut), t);

  FamilyInfo info;
  info.kind = "torus";
  info.grid_dims = p.dims;
  info.grid_wrap = p.wrap;
  if (p.wrap) info.orbits = {{0, static_cast<double>(n)}};
  // Bisection: the cheapest cut through the middle of an even dimension; a ring dimension
  // is cut twice (d > 2), a 2-ring or a line once.
  std::size_t best_dim = D;
  double best = 0.0;
  for (std::size_t i = 0; i < D; ++i) {
    const int d = p.dims[i];
    if (d < 2 || d % 2 != 0) continue;
    const double cut = static_cast<double>(n / d) * ((p.wrap && d > 2) ? 2.0 : 1.0);
    if (best_dim == D || cut < best) {
      best = cut;
      best_dim = i;
    }
  }
  if (best_dim != D) {
    info.bisection = p.link.bandwidth * best;
    long long stride = 1;
    for (std::size_t i = 0; i < best_dim; ++i) stride *= p.dims[i];
    info.bisection_side.resize(n);
    for (long long v = 0; v < n; ++v) {
      info.bisection_side[v] = ((v / stride) % p.dims[best_dim]) >= p.dims[best_dim] / 2;
    }
  }
  Topology topo = b.finish(std::move(info), nullptr);
  topo.set_router(std::make_shared<DimensionOrderRouter>(std::move(t)));
  return topo;
}

Topology build_wafer_mesh(const WaferMeshParams& p) {
  if (p.x < 1 || p.y < 1) throw Error("wafer-mesh.dims", "every dimension must be at least 1");
  if (p.wafers < 1) throw Error("wafer-mesh.wafers", "must be at least 1");
  check_size("wafer-mesh.dims", static_cast<long double>(p.x) * p.y * p.wafers,
             2.0L * p.x * p.y * p.wafers + static_cast<long double>(p.y) * p.wafers);
  const std::vector<int> dims{p.x, p.y};
  const long long per = product(dims);
  const long long n = per * p.wafers;
  TopologyBuilder b;
  const auto t_pe = b.tier("pe");
  const auto t_io = b.tier("wafer_io");
  const auto t_sw = b.tier("swarm");
  for (long long i = 0; i < n; ++i) b.add_node(NodeKind::kEndpoint, t_pe, i, true);
  GridTables t;
  t.dims = dims;
  t.wrap = false;
  t.per_grid = per;
  t.grids = p.wafers;
  t.plus.assign(n * 2, kNoLink);
  t.minus.assign(n * 2, kNoLink);
  const Link on_wafer = make_link(p.link, LinkClass::kWafer);
  for (int w = 0; w < p.wafers; ++w) add_grid(b, static_cast<NodeId>(w * per), dims, false, on_wafer, t);
  if (p.wafers > 1) {
    const NodeId first_io = static_cast<NodeId>(b.num_nodes());
    for (int w = 0; w < p.wafers; ++w) b.add_node(NodeKind::kSwitch, t_io, w, true);
    const NodeId sw = b.add_node(NodeKind::kSwitch, t_sw, 0, true);
    const Link off = make_link(p.inter_wafer, LinkClass::kInterWafer);
    t.edge_to_io.resize(static_cast<std::size_t>(p.wafers) * p.y);
    t.io_to_edge.resize(t.edge_to_io.size());
    t.io_up.resize(p.wafers);
    t.io_down.resize(p.wafers);
    for (int w = 0; w < p.wafers; ++w) {
      for (int y = 0; y < p.y; ++y) {
        const auto id = b.add_cable(static_cast<NodeId>(w * per + static_cast<long long>(y) * p.x),
                                    first_io + w, on_wafer);
        t.edge_to_io[w * p.y + y] = id;
        t.io_to_edge[w * p.y + y] = id + 1;
      }
      const auto id = b.add_cable(first_io + w, sw, off);
      t.io_up[w] = id;
      t.io_down[w] = id + 1;
    }
  }
  FamilyInfo info;
  info.kind = "wafer-mesh";
  if (p.wafers == 1) {
    info.grid_dims = dims;
    info.grid_wrap = false;
    const int dmax = std::max(p.x, p.y);
    if (dmax % 2 == 0) {
      const int dim = p.x >= p.y ? 0 : 1;
      info.bisection = p.link.bandwidth * static_cast<double>(per / dmax);
      info.bisection_side.resize(per);
      for (long long v = 0; v < per; ++v) {
        const int c = dim == 0 ? static_cast<int>(v % p.x) : static_cast<int>(v / p.x);
        info.bisection_side[v] = c >= dims[dim] / 2;
      }
    }
  } else if (p.wafers % 2 == 0) {
    // Half the wafers on each side: each wafer's traffic leaves through its I/O node, limited
    // by the inter-wafer link or by the west-edge column feeding it, whichever is smaller.
    const Bandwidth per_wafer = std::min(p.inter_wafer.bandwidth, p.link.bandwidth * p.y);
    info.bisection = per_wafer * static_cast<double>(p.wafers / 2);
  }
  Topology topo = b.finish(std::move(info), nullptr);
  topo.set_router(std::make_shared<DimensionOrderRouter>(std::move(t)));
  return topo;
}

}  // namespace wallsim::topology
