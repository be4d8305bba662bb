// Bisection bandwidth against Boost max-flow, hop metrics against brute force.
#include <catch2/catch.hpp>

#include "topology/metrics.hpp"
#include "topology/routing.hpp"
#include "topology_test_support.hpp"

using namespace wallsim;
using namespace wallsim::topology;

namespace {
std::vector<std::uint8_t> split(const Topology& t) {
  if (!t.info().bisection_side.empty()) return t.info().bisection_side;
  std::vector<std::uint8_t> side(t.num_endpoints(), 0);
  for (size_t i = t.num_endpoints() / 2; i < side.size(); ++i) side[i] = 1;
  return side;
}

void check_closed_form_against_max_flow(const Topology& t) {
  REQUIRE(t.info().bisection);
  CHECK(t.info().bisection->value() == Approx(max_flow_cut(t, split(t)).value()).epsilon(1e-9));
}
}  // namespace

TEST_CASE("topology bisection closed forms equal a Boost max-flow min-cut", "[topology][metrics]") {
  SECTION("fat-tree: N/2 x bandwidth / oversubscription") {
    for (int k : {4, 6, 8}) check_closed_form_against_max_flow(test::fat_tree(k));
    check_closed_form_against_max_flow(test::fat_tree(4, 2.0));
    check_closed_form_against_max_flow(test::fat_tree(8, 3.0));
    // k=4: 16 hosts, 8 x 50 GB/s = 400 GB/s.
    CHECK(test::fat_tree(4).info().bisection->value() == Approx(400e9));
    CHECK(test::fat_tree(4, 2.0).info().bisection->value() == Approx(200e9));
  }
  SECTION("torus and mesh: 2 (wrap) or 1 cut planes across the cheapest even dimension") {
    check_closed_form_against_max_flow(test::torus({4, 4}, true));
    check_closed_form_against_max_flow(test::torus({4, 6, 2}, true));
    check_closed_form_against_max_flow(test::torus({8}, true));
    check_closed_form_against_max_flow(test::torus({4, 4, 4}, false));
    check_closed_form_against_max_flow(test::torus({2, 2}, true));
    // 4x4x4 torus: 2 x 16 links x 50 GB/s.
    CHECK(test::torus({4, 4, 4}, true).info().bisection->value() == Approx(1.6e12));
  }
  SECTION("ring, switch, fully-connected") {
    check_closed_form_against_max_flow(build_ring({.n = 6, .link = test::link()}));
    check_closed_form_against_max_flow(build_ring({.n = 7, .link = test::link()}));
    check_closed_form_against_max_flow(build_switch({.n = 7, .link = test::link()}));
    check_closed_form_against_max_flow(build_fully_connected({.n = 6, .link = test::link()}));
  }
  SECTION("wafer mesh") {
    check_closed_form_against_max_flow(build_wafer_mesh({.x = 6, .y = 4, .link = test::link(4)}));
    check_closed_form_against_max_flow(build_wafer_mesh({.x = 3, .y = 4, .link = test::link(4)}));
  }
  SECTION("families without a closed form use max-flow") {
    const Metrics m = compute_metrics(test::clos(8, 8, 4, 4));
    CHECK(m.bisection_method == "max-flow");
    // Non-blocking rail Clos: 32 GPUs on each side at 50 GB/s each.
    CHECK(m.bisection->value() == Approx(32 * 50e9));
    // Half the spines: the leaf uplinks halve the cut.
    CHECK(compute_metrics(test::clos(8, 8, 4, 2)).bisection->value() == Approx(16 * 50e9));
  }
}

TEST_CASE("topology hop metrics equal an all-pairs brute force", "[topology][metrics]") {
  auto brute = [](const Topology& t) {
    double sum = 0, pairs = 0;
    std::uint32_t diam = 0;
    for (NodeId d = 0; d < t.num_endpoints(); ++d) {
      const auto dist = distances_to(t, d);
      for (NodeId s = 0; s < t.num_endpoints(); ++s) {
        if (s == d) continue;
        sum += dist[s];
        pairs += 1;
        diam = std::max(diam, dist[s]);
      }
    }
    return std::pair{sum / pairs, diam};
  };
  std::vector<Topology> cases;
  cases.push_back(test::torus({3, 4, 5}, false));   // grid closed form
  cases.push_back(test::torus({3, 4, 5}, true));    // one orbit
  cases.push_back(test::torus({2, 6}, true));
  cases.push_back(test::dragonfly(2, 4, 2, 9));     // group-shift orbits
  cases.push_back(test::dragonfly(1, 4, 2, 5));
  cases.push_back(test::clos(8, 8, 4, 4));
  cases.push_back(test::clos(8, 4, 4, 2, 8));       // domains of two nodes: no orbits
  cases.push_back(build_fat_tree({.k = 6, .endpoints = 40, .link = test::link()}));
  cases.push_back(build_wafer_mesh({.x = 4, .y = 3, .wafers = 2, .link = test::link(4), .inter_wafer = test::link(150)}));
  for (const auto& t : cases) {
    INFO(t.info().kind << " with " << t.num_endpoints() << " endpoints");
    const auto [avg, diam] = brute(t);
    const Metrics m = compute_metrics(t);
    CHECK(m.avg_hops == Approx(avg));
    CHECK(m.diameter_hops == static_cast<int>(diam));
    CHECK(m.estimated.empty());
  }
}

TEST_CASE("topology metrics on a large fabric are sampled and say so", "[topology][metrics]") {
  const Topology t = build_wafer_mesh({.x = 80, .y = 60, .link = test::link(4)});
  MetricsOptions opt;
  opt.exact_sources_limit = 1000;
  const Metrics m = compute_metrics(t, opt);
  // Hops stay exact through the grid closed form; only path diversity is sampled.
  CHECK(m.diameter_hops == 79 + 59);
  CHECK(m.estimated == std::vector<std::string>{"path_diversity"});
}

TEST_CASE("topology metrics on a fabric cut by failures count the unreachable pairs", "[topology][metrics]") {
  // k = 4 fat-tree: 16 hosts, 2 per edge switch, 2 edge switches per pod, 4 pods. Hops: 2
  // under one edge switch, 4 across a pod, 6 across pods.
  Topology t = test::fat_tree(4);
  SECTION("healthy: every pair reachable") {
    const Metrics m = compute_metrics(t);
    CHECK(m.unreachable_pairs == 0.0);
    // From each host: 1 at 2 hops, 2 at 4, 12 at 6: 16 x (2 + 8 + 72) / 240 = 1312 / 240.
    CHECK(m.avg_hops == Approx(1312.0 / 240.0));
  }
  SECTION("a failed edge switch cuts its two hosts off") {
    NodeId edge0 = 0;
    while (t.node_name(edge0) != "edge0") ++edge0;
    t.fail_node(edge0);
    const Metrics m = compute_metrics(t);
    // The two cut hosts reach no one, and no one reaches them: 2 x 15 + 14 x 2 = 58 ordered pairs.
    CHECK(m.unreachable_pairs == 58.0);
    // Over the 14 x 13 = 182 reachable pairs: 7 edge switches x 2 pairs at 2 hops; 3 whole pods
    // x 8 pairs at 4 hops (the cut pod has one edge switch left); the other 144 at 6 hops:
    // (28 + 96 + 864) / 182.
    CHECK(m.avg_hops == Approx(988.0 / 182.0));
    CHECK(m.diameter_hops == 6);
    // Two shortest paths across a pod (its two aggregation switches), 4 across pods (2 x 2 cores).
    CHECK(m.path_diversity == Approx((14 * 1.0 + 24 * 2.0 + 144 * 4.0) / 182.0));
  }
}
