// Dragonfly (Kim, Dally, Scott, Abts, ISCA 2008). Group G's global port k (router k / h)
// goes to group G + (k mod (g-1)) + 1; its partner is the port of the same copy whose offset
// leads back. Routing: minimal (local, global, local), Valiant (minimal to a hashed
// intermediate group, then minimal), UGAL (Valiant only when its hop-weighted queue,
// from the link loads given, is shorter than minimal's: Singh's UGAL-L rule).
#include <algorithm>

#include "core/error.hpp"
#include "core/text.hpp"
#include "topology/families.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {
namespace {

enum class Mode { kMinimal, kValiant, kUgal };

struct DfTables {
  long long p = 0, a = 0, h = 0, g = 0, copies = 0;
  Mode mode = Mode::kMinimal;
  std::vector<LinkId> term_up, term_down;  // per endpoint
  std::vector<LinkId> local;               // [(grp * a + r1) * a + r2]
  std::vector<LinkId> global;              // [grp * a * h + k]
};

class DragonflyRouter final : public Router {
 public:
  explicit DragonflyRouter(DfTables t) : t_(std::move(t)) {}

 private:
  /// Appends the minimal path from router (gs, rs) to group gt; returns the router reached.
  long long to_group(long long gs, long long rs, long long gt, std::uint64_t h, Path& out) const {
    const long long o = ((gt - gs) % t_.g + t_.g) % t_.g;  // 1..g-1
    const long long c = static_cast<long long>(h % static_cast<std::uint64_t>(t_.copies));
    const long long k = c * (t_.g - 1) + o - 1;
    const long long rg = k / t_.h;
    if (rg != rs) out.push_back(t_.local[(gs * t_.a + rs) * t_.a + rg]);
    out.push_back(t_.global[gs * t_.a * t_.h + k]);
    const long long partner = c * (t_.g - 1) + (t_.g - o - 1);
    return partner / t_.h;
  }
  void minimal(long long rs_global, long long rt_global, std::uint64_t h, Path& out) const {
    long long gs = rs_global / t_.a, rs = rs_global % t_.a;
    const long long gt = rt_global / t_.a, rt = rt_global % t_.a;
    if (gs != gt) {
      rs = to_group(gs, rs, gt, h, out);
      gs = gt;
    }
    if (rs != rt) out.push_back(t_.local[(gs * t_.a + rs) * t_.a + rt]);
  }
  void valiant(long long rs_global, long long rt_global, std::uint64_t key, NodeId src,
               NodeId dst, Path& out) const {
    const long long gs = rs_global / t_.a, gt = rt_global / t_.a;
    if (t_.g <= 2 || gs == gt) {
      minimal(rs_global, rt_global, ecmp_hash(key, src, dst, 1), out);
      return;
    }
    // Intermediate group: a hashed choice among the groups that are neither end.
    long long gi = static_cast<long long>(ecmp_hash(key, src, dst, 3) %
                                          static_cast<std::uint64_t>(t_.g - 2));
    for (long long skip : {std::min(gs, gt), std::max(gs, gt)}) {
      if (gi >= skip) ++gi;
    }
    const long long ri = to_group(gs, rs_global % t_.a, gi, ecmp_hash(key, src, dst, 1), out);
    minimal(gi * t_.a + ri, rt_global, ecmp_hash(key, src, dst, 2), out);
  }
  static double queue(const Topology& t, const Path& p, const std::vector<double>& load) {
    double q = 0.0;
    for (LinkId l : p) q = std::max(q, load[l] / t.link(l).bandwidth.value());
    return q * static_cast<double>(p.size());
  }
  bool do_route(const Topology& t, NodeId src, NodeId dst, std::uint64_t key,
                const std::vector<double>* load, Path& out) const override {
    const long long n = t_.p * t_.a * t_.g;
    if (src >= n || dst >= n) return false;
    const long long rs = src / t_.p, rt = dst / t_.p;
    out.push_back(t_.term_up[src]);
    Path mid;
    if (t_.mode == Mode::kValiant) {
      valiant(rs, rt, key, src, dst, mid);
    } else {
      minimal(rs, rt, ecmp_hash(key, src, dst, 1), mid);
      if (t_.mode == Mode::kUgal && load != nullptr) {
        Path alt;
        valiant(rs, rt, key, src, dst, alt);
        if (queue(t, alt, *load) < queue(t, mid, *load)) mid = std::move(alt);
      }
    }
    out.insert(out.end(), mid.begin(), mid.end());
    out.push_back(t_.term_down[dst]);
    return true;
  }
  [[nodiscard]] std::string_view do_name() const override {
    switch (t_.mode) {
      case Mode::kMinimal: return "dragonfly-minimal";
      case Mode::kValiant: return "dragonfly-valiant";
      case Mode::kUgal: return "dragonfly-ugal";
    }
    return "dragonfly";
  }
  DfTables t_;
};

}  // namespace

Topology build_dragonfly(const DragonflyParams& p) {
  for (auto [v, key] : {std::pair{p.p, "p"}, {p.a, "a"}, {p.h, "h"}, {p.g, "g"}}) {
    if (v < 1) throw Error(std::string("dragonfly.") + key, "must be at least 1");
  }
  {
    // Endpoints and routers; terminal, local (a router to every other of its group) and global
    // cables, before any is made.
    const long double routers = static_cast<long double>(p.a) * p.g;
    const long double cables = routers * p.p + routers * (p.a - 1) / 2 + routers * p.h / 2;
    check_size(p.p >= p.a ? "dragonfly.p" : "dragonfly.a", routers * (p.p + 1), cables);
  }
  if (static_cast<long long>(p.g) > static_cast<long long>(p.a) * p.h + 1) {
    throw Error("dragonfly.g", std::to_string(p.g) + " groups exceed a*h+1 = " +
                                   std::to_string(static_cast<long long>(p.a) * p.h + 1) +
                                   ": some groups would have no global link to each other");
  }
  DfTables t;
  t.p = p.p;
  t.a = p.a;
  t.h = p.h;
  t.g = p.g;
  t.copies = p.g > 1 ? (static_cast<long long>(p.a) * p.h) / (p.g - 1) : 0;
  if (p.routing == "minimal") t.mode = Mode::kMinimal;
  else if (p.routing == "valiant") t.mode = Mode::kValiant;
  else if (p.routing == "ugal") t.mode = Mode::kUgal;
  else throw Error("dragonfly.routing", quote_value(p.routing) + " is not minimal, valiant or ugal");

  const long long routers = t.a * t.g;
  const long long n = routers * t.p;
  TopologyBuilder b;
  const auto t_ep = b.tier("ep");
  const auto t_router = b.tier("router");
  for (long long i = 0; i < n; ++i) b.add_node(NodeKind::kEndpoint, t_ep, i, false);
  const NodeId first_router = static_cast<NodeId>(n);
  for (long long r = 0; r < routers; ++r) {
    b.add_node(NodeKind::kSwitch, t_router, r, true, p.switch_latency);
  }
  const Link term = make_link(p.terminal, LinkClass::kScaleOut);
  const Link local = make_link(p.local, LinkClass::kScaleOut);
  const Link global = make_link(p.global, LinkClass::kScaleOut);
  t.term_up.resize(n);
  t.term_down.resize(n);
  for (long long i = 0; i < n; ++i) {
    const auto id = b.add_cable(static_cast<NodeId>(i), first_router + static_cast<NodeId>(i / t.p), term);
    t.term_up[i] = id;
    t.term_down[i] = id + 1;
  }
  t.local.assign(t.g * t.a * t.a, 0);
  for (long long grp = 0; grp < t.g; ++grp) {
    for (long long r1 = 0; r1 < t.a; ++r1) {
      for (long long r2 = r1 + 1; r2 < t.a; ++r2) {
        const auto id = b.add_cable(first_router + static_cast<NodeId>(grp * t.a + r1),
                                    first_router + static_cast<NodeId>(grp * t.a + r2), local);
        t.local[(grp * t.a + r1) * t.a + r2] = id;
        t.local[(grp * t.a + r2) * t.a + r1] = id + 1;
      }
    }
  }
  const long long ports = t.a * t.h;
  t.global.assign(t.g * ports, 0);
  for (long long grp = 0; grp < t.g; ++grp) {
    for (long long k = 0; k < t.copies * (t.g - 1); ++k) {
      const long long c = k / (t.g - 1), o = k % (t.g - 1) + 1;
      const long long peer = (grp + o) % t.g;
      const long long pk = c * (t.g - 1) + (t.g - o - 1);
      if (std::pair{grp, k} > std::pair{peer, pk}) continue;  // each cable once
      const auto id = b.add_cable(first_router + static_cast<NodeId>(grp * t.a + k / t.h),
                                  first_router + static_cast<NodeId>(peer * t.a + pk / t.h), global);
      t.global[grp * ports + k] = id;
      t.global[peer * ports + pk] = id + 1;
    }
  }
  FamilyInfo info;
  info.kind = "dragonfly";
  // Shifting every group index by one maps the palm-tree wiring onto itself, so the
  // endpoints of one group's routers represent everyone: a orbits of p*g endpoints.
  for (long long r = 0; r < t.a; ++r) {
    info.orbits.emplace_back(static_cast<NodeId>(r * t.p), static_cast<double>(t.p * t.g));
  }
  Topology topo = b.finish(std::move(info), nullptr);
  topo.set_router(std::make_shared<DragonflyRouter>(std::move(t)));
  return topo;
}

}  // namespace wallsim::topology
