// Collective algorithms against their closed forms, under both network models.
#include <catch2/catch.hpp>

#include <bit>
#include <map>
#include <set>

#include "collectives/flow_model.hpp"

#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "engine/step.hpp"
#include "parallelism/plan.hpp"
#include "core/presets.hpp"
#include "topology/spec.hpp"
#include "topology_test_support.hpp"

using namespace wallsim;
using namespace wallsim::collectives;
using namespace wallsim::topology;
using Catch::Matchers::Contains;

namespace {
constexpr double B = 50e9, l = 1e-6;  // link bandwidth and latency of the test fabrics
const CostParams kNoOverhead{};
const auto analytic = NetworkModel::build("analytic", "test");
const auto flow = NetworkModel::build("flow", "test");

std::vector<NodeId> first(std::size_t n) {
  std::vector<NodeId> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = static_cast<NodeId>(i);
  return g;
}

Schedule sched(const Topology& t, Op op, Algo a, std::size_t n, double bytes) {
  std::string why;
  auto s = build_schedule(t, op, a, first(n), Bytes::of(bytes), {}, &why);
  INFO(why);
  REQUIRE(s);
  return *s;
}

Topology star(int n) { return build_switch({.n = n, .link = test::link()}); }

/// Both models, one expectation (no contention in these cases).
void check_both(const Topology& t, const Schedule& s, double want) {
  CHECK(analytic->time(t, s, kNoOverhead).value() == Approx(want).epsilon(1e-9));
  CHECK(flow->time(t, s, kNoOverhead).value() == Approx(want).epsilon(1e-9));
}
}  // namespace

TEST_CASE("collectives ring all_reduce on one switch: 2(n-1) alpha + 2(n-1)/n S/B", "[collectives]") {
  for (int n : {2, 3, 8, 16}) {
    const Topology t = star(n);
    const double S = 1 << 30, alpha = 2 * l;  // two links per message
    INFO("n=" << n);
    check_both(t, sched(t, Op::kAllReduce, Algo::kRing, n, S),
               2 * (n - 1) * alpha + 2.0 * (n - 1) / n * S / B);
    // busbw tends to the link bandwidth for large S.
    const double time = flow->time(t, sched(t, Op::kAllReduce, Algo::kRing, n, 64.0 * (1 << 30)), kNoOverhead).value();
    CHECK(64.0 * (1 << 30) / time * busbw_factor(Op::kAllReduce, n) == Approx(B).epsilon(1e-3));
  }
}

TEST_CASE("collectives each algorithm's own closed form", "[collectives]") {
  const int n = 8;
  const Topology t = star(n);
  const double S = 1 << 28, alpha = 2 * l;
  SECTION("ring all_gather and reduce_scatter: (n-1)(alpha + S/(nB))") {
    check_both(t, sched(t, Op::kAllGather, Algo::kRing, n, S), (n - 1) * (alpha + S / n / B));
    check_both(t, sched(t, Op::kReduceScatter, Algo::kRing, n, S), (n - 1) * (alpha + S / n / B));
  }
  SECTION("halving-doubling all_reduce: 2 log2(n) alpha + 2(n-1)/n S/B") {
    check_both(t, sched(t, Op::kAllReduce, Algo::kHalvingDoubling, n, S),
               2 * 3 * alpha + 2.0 * (n - 1) / n * S / B);
  }
  SECTION("direct all_to_all: (n-1)(alpha + S/(nB))") {
    check_both(t, sched(t, Op::kAllToAll, Algo::kDirect, n, S), (n - 1) * (alpha + S / n / B));
  }
  SECTION("send_recv: alpha + S/B") {
    check_both(t, sched(t, Op::kSendRecv, Algo::kDirect, n, S), alpha + S / B);
  }
  SECTION("pipelined tree broadcast: (depth + C - 1)(alpha + 2 chunk / B)") {
    // A node sends a chunk to each of its two children per step: they share its link.
    const Schedule s = sched(t, Op::kBroadcast, Algo::kTree, n, S);
    const double C = static_cast<double>(s.chunks);
    CHECK(C > 1);
    check_both(t, s, (3 + C - 1) * (alpha + 2 * (S / C) / B));
  }
  SECTION("pipelined chain (ring) broadcast: (n - 1 + C - 1)(alpha + chunk / B)") {
    const Schedule s = sched(t, Op::kBroadcast, Algo::kRing, n, S);
    const double C = static_cast<double>(s.chunks);
    check_both(t, s, (n - 1 + C - 1) * (alpha + S / C / B));
  }
  SECTION("mesh2d on a 4x4 torus: rows, then columns, then rows") {
    const Topology g = test::torus({4, 4}, true);
    const double X = 4, Y = 4;  // one hop between ring neighbours (wrap)
    const double want = (X - 1) * (l + S / X / B) + 2 * (Y - 1) * (l + S / (X * Y) / B) +
                        (X - 1) * (l + S / X / B);
    check_both(g, sched(g, Op::kAllReduce, Algo::kMesh2d, 16, S), want);
  }
  SECTION("hierarchical on a rail Clos: scale-up ring, rail ring, scale-up ring") {
    // 4 nodes x 4 GPUs, one node per leaf: rail neighbours cross a spine (4 links, 4 l).
    const Topology c = build_clos({.nodes = 4, .gpus_per_node = 4, .nodes_per_leaf = 1, .spines = 1,
                                   .scale_up = test::link(450), .scale_out = test::link(50)});
    const double m = 4, k = 4, Bu = 450e9;
    const double want = 2 * (m - 1) * (2 * l + S / m / Bu) + 2 * (k - 1) * (4 * l + S / (m * k) / B);
    CHECK(analytic->time(c, sched(c, Op::kAllReduce, Algo::kHierarchical, 16, S), kNoOverhead).value() ==
          Approx(want).epsilon(1e-9));
  }
  SECTION("halving-doubling on a rail Clos: distances 8 and 4 cross a spine, 2 and 1 stay in the node") {
    // The fabric has cost levels, so each step goes by its levels (every transfer of a pairing
    // alone on its ports): halving S/2, S/4 across nodes, S/8, S/16 inside; doubling back.
    const Topology c = build_clos({.nodes = 4, .gpus_per_node = 4, .nodes_per_leaf = 1, .spines = 1,
                                   .scale_up = test::link(450), .scale_out = test::link(50)});
    const double Bu = 450e9;
    const double want = 2 * ((4 * l + S / 2 / B) + (4 * l + S / 4 / B) + (2 * l + S / 8 / Bu) + (2 * l + S / 16 / Bu));
    const Schedule hd = sched(c, Op::kAllReduce, Algo::kHalvingDoubling, 16, S);
    CHECK(analytic->time(c, hd, kNoOverhead).value() == Approx(want).epsilon(1e-9));
    // The same transfers listed one by one take the same time.
    Schedule listed = hd;
    for (auto& ph : listed.phases) {
      std::vector<Transfer> xs;
      ph.for_each([&](const Transfer& x) { xs.push_back(x); });
      ph.ring.reset();
      ph.transfers = std::move(xs);
    }
    CHECK(analytic->time(c, listed, kNoOverhead).value() == Approx(want).epsilon(1e-9));
  }
}

TEST_CASE("collectives hierarchical all_to_all is DeepEP's dispatch: once to each other domain's rail peer, forwarded inside the domain",
          "[collectives]") {
  // 3 nodes x 4 GPUs. Rank (node d, index j) sends S r to (e, j) for each other node e, and
  // S / 4 to each of its 3 node peers: S (2 r + 3/4) in all, against the direct all-to-all's
  // S 11/12.
  const Topology c = build_clos({.nodes = 3, .gpus_per_node = 4, .nodes_per_leaf = 1, .spines = 1,
                                 .scale_up = test::link(450), .scale_out = test::link(50)});
  const double S = 1 << 20, r = 0.1;
  CollectiveOptions opt;
  opt.rail_share = r;
  std::string why;
  const auto s = build_schedule(c, Op::kAllToAll, Algo::kHierarchical, first(12), Bytes::of(S), opt, &why);
  INFO(why);
  REQUIRE(s);
  REQUIRE(s->phases.size() == 1);
  std::map<std::pair<NodeId, NodeId>, double> sent;
  s->phases.front().for_each([&](const Transfer& x) { sent[{x.src, x.dst}] += x.bytes.value(); });
  CHECK(sent.size() == 12 * (2 + 3));
  for (NodeId a = 0; a < 12; ++a) {
    double out = 0.0;
    for (NodeId b = 0; b < 12; ++b) {
      const auto it = sent.find({a, b});
      const double want = a == b ? 0.0 : a / 4 == b / 4 ? S / 4 : a % 4 == b % 4 ? S * r : 0.0;
      CHECK((it == sent.end() ? 0.0 : it->second) == Approx(want));
      out += it == sent.end() ? 0.0 : it->second;
    }
    CHECK(out == Approx(S * (2 * r + 0.75)));
  }
  // Without the routing's share it is refused (nccl-tests has no such all-to-all).
  CHECK_FALSE(build_schedule(c, Op::kAllToAll, Algo::kHierarchical, first(12), Bytes::of(S), {}, &why));
  CHECK_THAT(why, Contains("moe_token_dispatcher: deepep"));
}

TEST_CASE("collectives tree beats ring on small messages, ring beats tree on large", "[collectives]") {
  const int n = 64;
  const Topology t = star(n);
  auto time = [&](Algo a, double S) { return analytic->time(t, sched(t, Op::kAllReduce, a, n, S), kNoOverhead).value(); };
  CHECK(time(Algo::kTree, 1024) < time(Algo::kRing, 1024));
  CHECK(time(Algo::kRing, 1 << 30) < time(Algo::kTree, 1 << 30));
  // The tuner follows: tree (or halving-doubling) small, a bandwidth-optimal algorithm large.
  const auto small = choose_schedule(t, Op::kAllReduce, first(n), Bytes::of(1024), {}, kNoOverhead, {}, *analytic);
  CHECK(small.schedule.algo != Algo::kRing);
  CHECK(small.time.value() <= time(Algo::kTree, 1024));
}

TEST_CASE("collectives all_to_all on an oversubscribed fat-tree slows by the oversubscription", "[collectives]") {
  const double S = 1 << 28;
  auto time = [&](double oversub) {
    const Topology t = test::fat_tree(4, oversub);
    return flow->time(t, sched(t, Op::kAllToAll, Algo::kDirect, 16, S), kNoOverhead).value();
  };
  const double ratio = time(2.0) / time(1.0);
  // 12 of a rank's 15 blocks leave the pod; only intra-edge steps escape the slowdown.
  CHECK(ratio > 1.6);
  CHECK(ratio <= 2.0 + 1e-9);
  // The analytic model sees the halved uplink bandwidth on the bottleneck too.
  const Topology a = test::fat_tree(4, 1.0), b = test::fat_tree(4, 2.0);
  CHECK(analytic->time(b, sched(b, Op::kAllToAll, Algo::kDirect, 16, S), kNoOverhead).value() >
        1.9 * analytic->time(a, sched(a, Op::kAllToAll, Algo::kDirect, 16, S), kNoOverhead).value());
}

TEST_CASE("collectives two collectives sharing a link each get half", "[collectives]") {
  // A line 0 - 1 - 2 - 3: send_recv 0->2 and 1->3 (and back) share the link 1->2.
  const Topology t = test::torus({4}, false);
  const double S = 1 << 30, alpha = 2 * l;
  std::string why;
  const auto a = *build_schedule(t, Op::kSendRecv, Algo::kDirect, {0, 2}, Bytes::of(S), {}, &why);
  const auto b = *build_schedule(t, Op::kSendRecv, Algo::kDirect, {1, 3}, Bytes::of(S), {}, &why);
  const std::vector<Schedule> both = {a, b};
  // Alone: alpha + S/B. Together each gets half of link 1->2: alpha + 2S/B.
  CHECK(flow->time(t, a, kNoOverhead).value() == Approx(alpha + S / B));
  CHECK(flow->time(t, both, kNoOverhead).value() == Approx(alpha + 2 * S / B));
  // The analytic model has no contention on links between endpoints.
  CHECK(analytic->time(t, both, kNoOverhead).value() == Approx(alpha + S / B));
  SECTION("messages from one endpoint in one step share its injection in both models") {
    const Topology st = star(3);
    const auto c = *build_schedule(st, Op::kSendRecv, Algo::kDirect, {0, 1}, Bytes::of(S), {}, &why);
    const auto d = *build_schedule(st, Op::kSendRecv, Algo::kDirect, {0, 2}, Bytes::of(S), {}, &why);
    const std::vector<Schedule> two = {c, d};
    CHECK(flow->time(st, two, kNoOverhead).value() == Approx(alpha + 2 * S / B));
    CHECK(analytic->time(st, two, kNoOverhead).value() == Approx(alpha + 2 * S / B));
  }
}

TEST_CASE("collectives per-message overhead adds to every step", "[collectives]") {
  const Topology t = star(4);
  const double S = 1 << 20, alpha = 2 * l, o = 5e-6;
  const Schedule s = sched(t, Op::kAllReduce, Algo::kRing, 4, S);
  CostParams p;
  p.overhead = Seconds::of(o);
  const double want = 6 * (o + alpha + S / 4 / B);
  CHECK(analytic->time(t, s, p).value() == Approx(want));
  CHECK(flow->time(t, s, p).value() == Approx(want));
}

TEST_CASE("collectives halving-doubling pairs rank r with rank r xor d, in the group's order", "[collectives]") {
  // 8 ranks on endpoints {5, 3, 9, 0, 12, 7, 1, 14}, all_reduce of S: recursive halving at
  // distances 4, 2, 1 (S/2, S/4, S/8 each way), then recursive doubling at 1, 2, 4 (S/8, S/4,
  // S/2): in step k, rank r sends to rank r xor d_k, every rank once.
  const Topology t = star(16);
  const std::vector<NodeId> g{5, 3, 9, 0, 12, 7, 1, 14};
  const double S = 8e6;
  const auto s = build_schedule(t, Op::kAllReduce, Algo::kHalvingDoubling, g, Bytes::of(S), {}, nullptr);
  REQUIRE(s);
  REQUIRE(s->phases.size() == 6);
  const std::size_t d[6] = {4, 2, 1, 1, 2, 4};
  const double part[6] = {S / 2, S / 4, S / 8, S / 8, S / 4, S / 2};
  for (std::size_t k = 0; k < 6; ++k) {
    std::set<std::pair<NodeId, NodeId>> got, want;
    s->phases[k].for_each([&](const Transfer& x) {
      got.insert({x.src, x.dst});
      CHECK(x.bytes.value() == Approx(part[k]));
    });
    for (std::size_t r = 0; r < 8; ++r) want.insert({g[r], g[r ^ d[k]]});
    CHECK(s->phases[k].size() == 8);
    CHECK(got == want);
  }
}

TEST_CASE("collectives bad input", "[collectives]") {
  CHECK_THROWS_WITH(parse_op("allreduce", "--op"), Contains("--op: unknown op 'allreduce' (did you mean 'all_reduce'?)"));
  CHECK_THROWS_WITH(parse_algo("rings", "--algo"), Contains("--algo: unknown algorithm 'rings' (did you mean 'ring'?)"));
  CHECK_THROWS_WITH(NetworkModel::build("fluid", "--network"), Contains("--network: unknown network model 'fluid'"));
  const Topology t = star(6);
  std::string why;
  CHECK_FALSE(build_schedule(t, Op::kAllReduce, Algo::kHalvingDoubling, first(6), Bytes::of(8), {}, &why));
  CHECK(why == "halving_doubling needs a power-of-two group");
  CHECK_THROWS_WITH(choose_schedule(t, Op::kAllToAll, first(6), Bytes::of(8), {}, kNoOverhead, Algo::kRing, *flow),
                    Contains("no algorithm runs all_to_all here"));
}

TEST_CASE("collectives analytic: a tapered Clos's leaf uplinks are shared by the leaf's GPUs", "[collectives]") {
  // Rail Clos of 1-GPU nodes (no scale-up), 2 nodes per leaf, links B = 50 GB/s, l = 1 us; a
  // cross-leaf message crosses GPU-leaf-spine-leaf-GPU: 4 l. GPUs 0 and 1 (leaf 0) each send
  // S = 100 MB to GPUs 2 and 3 (leaf 1) in one step.
  const double S = 100e6;
  Schedule s;
  s.op = Op::kSendRecv;
  s.phases.emplace_back();
  s.phases[0].transfers = {Transfer{0, 2, Bytes::of(S)}, Transfer{1, 3, Bytes::of(S)}};
  SECTION("one spine for two down-links (2:1): both messages leave leaf 0 over one uplink") {
    const Topology t = test::clos(4, 1, 2, 1);
    // Each GPU's port carries S (S/B = 2 ms), leaf 0's one uplink 2S: 4 l + 2S/B.
    CHECK(analytic->time(t, s, kNoOverhead).value() == Approx(4 * l + 2 * S / B).epsilon(1e-12));
    // The flow model agrees: one spine, no ECMP choice, the two flows halve the uplink.
    CHECK(flow->time(t, s, kNoOverhead).value() == Approx(4 * l + 2 * S / B).epsilon(1e-9));
  }
  SECTION("two spines (non-blocking): the ports bind, 4 l + S/B") {
    const Topology t = test::clos(4, 1, 2, 2);
    CHECK(analytic->time(t, s, kNoOverhead).value() == Approx(4 * l + S / B).epsilon(1e-12));
  }
  SECTION("a failure elsewhere (routes costed one by one) keeps the taper") {
    // A third leaf, its uplink failed: leaves 0 and 1 are untouched, the fabric has failures.
    Topology t = test::clos(6, 1, 2, 1);
    NodeId leaf2 = 0, spine0 = 0;
    while (t.node_name(leaf2) != "leaf2") ++leaf2;
    while (t.node_name(spine0) != "spine0") ++spine0;
    for (LinkId id = 0; id < t.num_links(); ++id) {
      if (t.link_source(id) == leaf2 && t.link_target(id) == spine0) t.fail_link(id);
    }
    REQUIRE(t.has_failures());
    CHECK(analytic->time(t, s, kNoOverhead).value() == Approx(4 * l + 2 * S / B).epsilon(1e-12));
  }
}

TEST_CASE("collectives analytic: a step on a Clos with fewer spines is slower (issue 23's sweep)",
          "[collectives][engine]") {
  // Llama 3 70B on 1,024 H100: stage s's pipeline sends leave its 16-node leaf groups for the
  // next stage's, every GPU of a rail leaf at once; with fewer spines they share fewer uplinks.
  const Presets presets(std::string(WALLSIM_SOURCE_DIR) + "/data");
  const auto step = [&presets](int spines) {
    const Scenario s = load_scenario(std::string(WALLSIM_SOURCE_DIR) + "/data/scenarios/llama3-70b-1024xh100.yaml",
                                     {"cluster.scale_out.spines=" + std::to_string(spines)}, presets);
    const auto t = build_step_fabric(s.cluster);
    return engine::simulate_step(s, parallelism::make_plan(s), t, engine::step_options(analytic.get())).step_time.value();
  };
  const double s16 = step(16), s8 = step(8), s2 = step(2);
  CHECK(s16 < s8);
  CHECK(s8 < s2);
}

namespace {

/// An independent reference for the direct all-to-all under `flow`: every transfer of a step
/// cut into P equal pieces spread evenly over the equal-cost routes its router picks among
/// (found by trying ECMP keys; P a multiple of every transfer's route count, so that each
/// transfer weighs the same on a link), each piece a flow of simulate_flows (the solver checked
/// against SimGrid), the step ending with its last piece, steps in sequence.
double spread_reference(const Topology& t, const Schedule& s, double overhead) {
  constexpr double P = 144.0;  // 1, 2, 3, 4, 6, 8, 9, 12 or 16 routes
  double total = 0.0;
  for (const auto& ph : s.phases) {
    std::vector<Flow> flows;
    ph.for_each([&](const Transfer& x) {
      if (x.src == x.dst) return;
      std::set<Path> routes;
      for (std::uint64_t key = 0; key < 512; ++key) routes.insert(t.route(x.src, x.dst, key));
      const double each = P / static_cast<double>(routes.size());
      REQUIRE(each == std::floor(each));
      for (const auto& r : routes) flows.push_back({r, x.bytes / P, Seconds::of(overhead), each});
    });
    double span = 0.0;
    for (const auto& f : simulate_flows(t, flows)) span = std::max(span, f.value());
    total += ph.repeat * span;
  }
  return total;
}

}  // namespace

TEST_CASE("collectives direct all_to_all under flow: pair classes give max-min over every equal-cost path",
          "[collectives][flow]") {
  const double S = 1 << 24, o = 3e-6;
  CostParams p;
  p.overhead = Seconds::of(o);
  struct Case {
    const char* what;
    Topology t;
  };
  std::vector<Case> cases;
  cases.push_back({"clos, 2 spines for 4 nodes per leaf (2:1)", test::clos(8, 2, 4, 2)});
  cases.push_back({"clos, 1 spine for 4 nodes per leaf (4:1)", test::clos(8, 2, 4, 1)});
  cases.push_back({"clos, non-blocking", test::clos(8, 2, 4, 4)});
  cases.push_back({"clos, one GPU per node, 3 leaves", test::clos(12, 1, 4, 2)});
  cases.push_back({"fat-tree k=4", test::fat_tree(4)});
  cases.push_back({"fat-tree k=4, 2:1", test::fat_tree(4, 2.0)});
  cases.push_back({"fat-tree k=4, 3:1", test::fat_tree(4, 3.0)});
  for (const auto& c : cases) {
    for (std::size_t n : {c.t.num_endpoints(), c.t.num_endpoints() - 3}) {
      INFO(c.what << ", " << n << " ranks");
      const Schedule s = sched(c.t, Op::kAllToAll, Algo::kDirect, n, S);
      REQUIRE(s.phases.front().ring);  // a rotation: the class path's input
      CHECK(flow->time(c.t, s, p).value() == Approx(spread_reference(c.t, s, o)).epsilon(1e-9));
    }
  }
}

TEST_CASE("collectives direct all_to_all under flow on a tapered Clos: hand-derived", "[collectives][flow]") {
  // 4 nodes of one GPU, 2 nodes per leaf, `spines` spines: a leaf's egress is spines x B. A
  // cross-leaf message crosses GPU-leaf-spine-leaf-GPU (4 l); each step adds the overhead o.
  // Shift 1 and 3: one message leaves each leaf (B each); shift 2: both do, sharing the egress.
  const double S = 1 << 26, o = 2e-6, blk = S / 4;
  CostParams p;
  p.overhead = Seconds::of(o);
  const Topology one = test::clos(4, 1, 2, 1);
  CHECK(flow->time(one, sched(one, Op::kAllToAll, Algo::kDirect, 4, S), p).value() ==
        Approx(3 * (o + 4 * l) + blk / B + 2 * blk / B + blk / B).epsilon(1e-12));
  const Topology two = test::clos(4, 1, 2, 2);  // no taper: every message at B
  CHECK(flow->time(two, sched(two, Op::kAllToAll, Algo::kDirect, 4, S), p).value() ==
        Approx(3 * (o + 4 * l) + 3 * blk / B).epsilon(1e-12));
}
