// Ring, single switch and fully-connected fabrics: small, symmetric, routed by shortest-path
// ECMP (the generic router is exact and fast at these sizes).
#include "core/error.hpp"
#include "core/limits.hpp"
#include "topology/families.hpp"

namespace wallsim::topology {

Link make_link(const LinkParams& p, LinkClass cls) {
  return Link{p.bandwidth, p.latency, p.energy, cls};
}

void check_size(const std::string& key, long double nodes, long double cables) {
  if (nodes > static_cast<long double>(kMaxNodes)) {
    throw Error(key, "gives " + format_number(static_cast<double>(nodes)) +
                         " nodes, more than wallsim builds (" + limits::with_commas(kMaxNodes) + ")");
  }
  if (cables > static_cast<long double>(kMaxCables)) {
    throw Error(key, "gives " + format_number(static_cast<double>(cables)) +
                         " cables, more than wallsim builds (" + limits::with_commas(kMaxCables) + ")");
  }
}

namespace {

void require_n(int n, const char* kind, int min) {
  check_size(std::string(kind) + ".n", n, n);
  if (n < min) {
    throw Error(std::string(kind) + ".n", "needs at least " + std::to_string(min) +
                                              " endpoints, got " + std::to_string(n));
  }
}

std::vector<std::pair<NodeId, double>> one_orbit(int n) { return {{0, static_cast<double>(n)}}; }

}  // namespace

Topology build_ring(const RingParams& p) {
  require_n(p.n, "ring", 2);
  TopologyBuilder b;
  const auto ep = b.tier("ep");
  for (int i = 0; i < p.n; ++i) b.add_node(NodeKind::kEndpoint, ep, i, true);
  const Link l = make_link(p.link, LinkClass::kScaleOut);
  const int cables = p.n == 2 ? 1 : p.n;  // two endpoints share one cable, not two
  for (int i = 0; i < cables; ++i) b.add_cable(i, (i + 1) % p.n, l);
  FamilyInfo info;
  info.kind = "ring";
  info.orbits = one_orbit(p.n);
  info.bisection = p.link.bandwidth * (p.n == 2 ? 1.0 : 2.0);
  return b.finish(std::move(info), nullptr);
}

Topology build_switch(const SwitchParams& p) {
  require_n(p.n, "switch", 1);
  TopologyBuilder b;
  const auto ep = b.tier("ep");
  const auto sw = b.tier("switch");
  for (int i = 0; i < p.n; ++i) b.add_node(NodeKind::kEndpoint, ep, i, false);
  const NodeId s = b.add_node(NodeKind::kSwitch, sw, 0, true, p.switch_latency);
  const Link l = make_link(p.link, LinkClass::kScaleOut);
  for (int i = 0; i < p.n; ++i) b.add_cable(i, s, l);
  FamilyInfo info;
  info.kind = "switch";
  info.orbits = one_orbit(p.n);
  info.bisection = p.link.bandwidth * static_cast<double>(p.n / 2);
  return b.finish(std::move(info), nullptr);
}

Topology build_fully_connected(const FullyConnectedParams& p) {
  require_n(p.n, "fully-connected", 2);
  check_size("fully-connected.n", p.n, static_cast<long double>(p.n) * (p.n - 1) / 2);
  TopologyBuilder b;
  const auto ep = b.tier("ep");
  for (int i = 0; i < p.n; ++i) b.add_node(NodeKind::kEndpoint, ep, i, false);
  const Link l = make_link(p.link, LinkClass::kScaleUp);
  for (int i = 0; i < p.n; ++i) {
    for (int j = i + 1; j < p.n; ++j) b.add_cable(i, j, l);
  }
  FamilyInfo info;
  info.kind = "fully-connected";
  info.orbits = one_orbit(p.n);
  info.bisection = p.link.bandwidth * static_cast<double>((p.n / 2) * (p.n - p.n / 2));
  return b.finish(std::move(info), nullptr);
}

}  // namespace wallsim::topology
