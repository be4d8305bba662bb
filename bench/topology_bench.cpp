// Issue 3 speed targets: build a k=64 fat-tree (65,536 endpoints, 5,120 switches) with its
// metrics in under 3 s and 1 GiB; route 1,000,000 random pairs in under 3 s.
// Prints each measured figure beside its target. Not a test: the machine is shared and noisy.
#include <cstdio>
#include <random>

#include "bench/bench_support.hpp"
#include "topology/families.hpp"
#include "topology/metrics.hpp"

using namespace wallsim;
using namespace wallsim::topology;
using namespace wallsim::bench;

int main() {
  const LinkParams link{units::gbit_per_s(400), units::us(1), {}};
  auto t0 = Clock::now();
  const Topology t = build_fat_tree({.k = 64, .link = link, .switch_latency = units::ns(300)});
  const double build_s = seconds_since(t0);
  const Metrics m = compute_metrics(t);
  const double build_metrics_s = seconds_since(t0);
  std::printf("k=64 fat-tree: %zu endpoints, %zu switches, %zu links, diameter %d, avg hops %.4f\n",
              m.endpoints, m.switches, m.links, m.diameter_hops, m.avg_hops);
  std::printf("  (build alone %.3f s)\n", build_s);
  report("build + metrics, k=64 fat-tree", build_metrics_s, "s", 3.0);
  report("peak resident memory after build + metrics", peak_rss_mib(), "MiB", 1024.0);

  std::mt19937_64 rng(1);
  const auto n = static_cast<NodeId>(t.num_endpoints());
  std::size_t hops = 0;
  t0 = Clock::now();
  for (int i = 0; i < 1'000'000; ++i) {
    const NodeId s = static_cast<NodeId>(rng() % n), d = static_cast<NodeId>(rng() % n);
    hops += t.route(s, d, static_cast<std::uint64_t>(i)).size();
  }
  const double route_s = seconds_since(t0);
  std::printf("  (mean route length %.4f links)\n", static_cast<double>(hops) / 1e6);
  report("route 1,000,000 random pairs, k=64 fat-tree", route_s, "s", 3.0);
  return 0;
}
