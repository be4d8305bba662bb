// Routes are valid chains of links, ECMP spreads over every equal-cost path, and failures
// reroute or disconnect as they should.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "core/error.hpp"
#include "topology/routing.hpp"
#include "topology_test_support.hpp"

using namespace wallsim;
using namespace wallsim::topology;
using Catch::Matchers::Contains;

namespace {

/// A route is valid when each link starts where the previous ended, from src to dst.
bool valid_chain(const Topology& t, NodeId src, NodeId dst, const Path& p) {
  NodeId at = src;
  for (LinkId l : p) {
    if (l >= t.num_links() || t.link_source(l) != at) return false;
    at = t.link_target(l);
  }
  return at == dst;
}

/// Shortest hop count by the generic reverse BFS (independent of the family routers).
std::uint32_t bfs_hops(const Topology& t, NodeId src, NodeId dst) { return distances_to(t, dst)[src]; }

void check_random_routes(const Topology& t, bool shortest, int pairs = 300) {
  std::mt19937_64 rng(11);
  const auto n = static_cast<NodeId>(t.num_endpoints());
  for (int i = 0; i < pairs; ++i) {
    const NodeId s = rng() % n, d = rng() % n;
    const Path p = t.route(s, d, rng());
    INFO("route " << s << " -> " << d);
    REQUIRE(valid_chain(t, s, d, p));
    if (s != d && shortest) CHECK(p.size() == bfs_hops(t, s, d));
  }
}

}  // namespace

TEST_CASE("topology routes are valid chains of links", "[topology][routing]") {
  SECTION("fat-tree (up/down ECMP, shortest)") { check_random_routes(test::fat_tree(8), true); }
  SECTION("leaf-spine") {
    check_random_routes(build_fat_tree({.k = 8, .levels = 2, .link = test::link()}), true);
  }
  SECTION("partial fat-tree") {
    check_random_routes(build_fat_tree({.k = 8, .endpoints = 70, .link = test::link()}), true);
  }
  SECTION("clos (rail ECMP, shortest)") { check_random_routes(test::clos(8, 8, 4, 4), true); }
  SECTION("NVL72 domains") { check_random_routes(test::clos(36, 4, 18, 2, 72), true); }
  SECTION("torus (dimension order is shortest)") {
    check_random_routes(test::torus({4, 3, 5}, true), true);
    check_random_routes(test::torus({4, 2, 5}, false), true);
  }
  SECTION("wafer mesh across wafers") {
    const Topology t = build_wafer_mesh({.x = 5, .y = 4, .wafers = 3, .link = test::link(4),
                                         .inter_wafer = test::link(150)});
    check_random_routes(t, false);
    // Within one wafer, XY routing is shortest: |dx| + |dy|.
    CHECK(t.route(0, 19).size() == 4 + 3);
  }
  SECTION("dragonfly minimal, valiant and ugal") {
    for (const char* r : {"minimal", "valiant", "ugal"}) {
      INFO(r);
      check_random_routes(test::dragonfly(2, 4, 2, 9, r), false);
    }
  }
  SECTION("ring and fully-connected (generic shortest-path ECMP)") {
    check_random_routes(build_ring({.n = 9, .link = test::link()}), true);
    check_random_routes(build_fully_connected({.n = 6, .link = test::link()}), true);
  }
}

TEST_CASE("topology ECMP spreads flows across all equal-cost paths", "[topology][routing]") {
  for (int k : {4, 8}) {
    const Topology t = test::fat_tree(k);
    const NodeId src = 0, dst = static_cast<NodeId>(t.num_endpoints() - 1);  // different pods
    std::set<Path> seen;
    for (std::uint64_t key = 0; key < 4000; ++key) seen.insert(t.route(src, dst, key));
    // Between pods: (k/2)^2 paths, one per core switch; the generic enumeration agrees.
    const auto all = t.shortest_paths(src, dst, 100000);
    CHECK(all.size() == static_cast<size_t>(k * k / 4));
    CHECK(seen.size() == all.size());
    CHECK(std::set<Path>(all.begin(), all.end()) == seen);
  }
  SECTION("the same flow key always takes the same path") {
    const Topology t = test::fat_tree(4);
    CHECK(t.route(0, 15, 99) == t.route(0, 15, 99));
  }
}

TEST_CASE("topology reroutes around a failed link and reports a disconnected pair",
          "[topology][routing]") {
  Topology t = test::fat_tree(4);
  const Path before = t.route(0, 15, 7);
  REQUIRE(before.size() == 6);
  const LinkId core_link = before[2];  // aggregation -> core
  t.fail_link(core_link);
  for (std::uint64_t key = 0; key < 200; ++key) {
    const Path p = t.route(0, 15, key);
    CHECK(valid_chain(t, 0, 15, p));
    CHECK(p.size() == 6);  // still shortest: another core
    for (LinkId l : p) {
      CHECK(l != core_link);
      CHECK(l != t.reverse(core_link));
    }
  }
  SECTION("failing a host's only cable disconnects it") {
    t.fail_link(t.route(0, 1)[0]);
    CHECK_THROWS_WITH(t.route(0, 15), Contains("no route from ep0 to ep15"));
  }
  SECTION("failing a switch fails its links") {
    Topology u = test::fat_tree(4);
    const Path p = u.route(0, 15, 3);
    const NodeId agg = u.link_target(p[1]);
    u.fail_node(agg);
    for (std::uint64_t key = 0; key < 50; ++key) {
      for (LinkId l : u.route(0, 15, key)) {
        CHECK(u.link_source(l) != agg);
        CHECK(u.link_target(l) != agg);
      }
    }
  }
  SECTION("a torus routes around a failed link the long way") {
    Topology r = test::torus({6}, true);
    const Path direct = r.route(0, 1);
    REQUIRE(direct.size() == 1);
    r.fail_link(direct[0]);
    CHECK(r.route(0, 1).size() == 5);
  }
}

TEST_CASE("topology dragonfly UGAL takes the Valiant path when the minimal one is loaded",
          "[topology][routing]") {
  const Topology t = test::dragonfly(1, 4, 2, 9, "ugal");
  const NodeId src = 0, dst = 4 * 5;  // group 0 to group 5
  const Path quiet = t.route(src, dst, 1, std::vector<double>(t.num_links(), 0.0));
  const Path minimal = test::dragonfly(1, 4, 2, 9, "minimal").route(src, dst, 1);
  CHECK(quiet == minimal);  // no load: minimal
  std::vector<double> load(t.num_links(), 0.0);
  for (LinkId l : minimal) load[l] = 1e12;  // a terabyte queued on the minimal path
  const Path busy = t.route(src, dst, 1, load);
  CHECK(busy != minimal);
  CHECK(busy.size() > minimal.size());
  CHECK(valid_chain(t, src, dst, busy));
}

TEST_CASE("topology route cost without routing equals the cost of the route", "[topology][routing]") {
  // Alpha-beta costing looks the cost up by the pair's first shared group (route_cost); it
  // must equal the latency and bottleneck of the path the router gives, for any ECMP key.
  auto check = [](const Topology& t) {
    std::mt19937_64 rng(5);
    const auto n = static_cast<NodeId>(t.num_endpoints());
    Path scratch;
    for (int i = 0; i < 2000; ++i) {
      const NodeId s = rng() % n, d = rng() % n;
      const std::uint64_t key = rng();
      const auto expect = t.path_cost(t.route(s, d, key));
      const auto got = t.route_cost(s, d, key, scratch);
      INFO(s << " -> " << d);
      CHECK(got.latency.value() == expect.latency.value());
      CHECK(got.bandwidth.value() == expect.bandwidth.value());
    }
  };
  SECTION("fat-trees, oversubscribed so that levels differ") {
    check(test::fat_tree(8, 2.0));
    check(build_fat_tree({.k = 8, .levels = 2, .oversubscription = 4.0, .link = test::link()}));
    check(build_fat_tree({.k = 8, .endpoints = 70, .link = test::link()}));
  }
  SECTION("clos: NVLink domains, rails, spines; NVL72; one GPU per domain") {
    check(test::clos(8, 8, 4, 4));
    check(test::clos(36, 4, 18, 2, 72));
    check(test::clos(8, 1, 4, 2));
    check(test::clos(1, 8, 1, 1));
  }
  SECTION("clos: a partial last NVL72 rack and a partial last leaf group (256 GPUs)") {
    check(test::clos(64, 4, 18, 18, 72));
  }
  SECTION("after a failure the lookup gives way to the rerouted path") {
    Topology t = build_fat_tree({.k = 4, .link = test::link()});
    const Path before = t.route(0, 15, 7);
    t.fail_link(before[2]);
    check(t);
  }
}
