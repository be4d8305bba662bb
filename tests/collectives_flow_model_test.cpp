// The flow-level model against hand-computed cases and a brute-force max-min reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <barrier>
#include <map>
#include <random>
#include <thread>

#include "collectives/flow_model.hpp"
#include "collectives/network_model.hpp"
#include "collectives/flow_solver.hpp"
#include "topology_test_support.hpp"

using namespace wallsim;
using namespace wallsim::collectives;
using namespace wallsim::topology;

namespace {

constexpr double B = 50e9;   // bytes/s of every test link (test::link() default)
constexpr double L = 1e-6;   // latency of every test link

Flow flow(const Topology& t, NodeId s, NodeId d, double bytes, double start = 0.0, double mult = 1.0) {
  return Flow{t.route(s, d), Bytes::of(bytes), Seconds::of(start), mult};
}

/// How random flows are drawn: sizes uniform in [min_mb, max_mb] MB, one in `at_zero`
/// starting at 0 and the rest at one of `steps` times within `span` seconds, multiplicity
/// 1..max_mult.
struct Mix {
  int min_mb, max_mb, at_zero;
  double span;
  int steps, max_mult;
};

/// `count` flows between random endpoint pairs drawn as `mix` says; `src` (optional) receives
/// their sources.
std::vector<Flow> flows_of(const Topology& t, std::mt19937_64& rng, int count, const Mix& mix,
                           std::vector<NodeId>* src = nullptr) {
  const auto n = static_cast<NodeId>(t.num_endpoints());
  std::vector<Flow> flows;
  for (int i = 0; i < count; ++i) {
    const NodeId s = rng() % n;
    NodeId d = rng() % n;
    if (d == s) d = (d + 1) % n;
    const double bytes = 1e6 * static_cast<double>(mix.min_mb + static_cast<int>(rng() % static_cast<unsigned>(mix.max_mb - mix.min_mb + 1)));
    const double start = (rng() % static_cast<unsigned>(mix.at_zero) == 0)
                             ? 0.0
                             : mix.span / mix.steps * static_cast<double>(rng() % static_cast<unsigned>(mix.steps));
    flows.push_back(Flow{t.route(s, d, rng()), Bytes::of(bytes), Seconds::of(start),
                         static_cast<double>(1 + rng() % static_cast<unsigned>(mix.max_mult))});
    if (src != nullptr) src->push_back(s);
  }
  return flows;
}

/// Sizes 1-1000 MB, a third starting at 0, the rest within 2 ms: few flows overlap long.
std::vector<Flow> random_flows(const Topology& t, std::mt19937_64& rng, int count, int max_mult,
                               std::vector<NodeId>* src = nullptr) {
  return flows_of(t, rng, count, {.min_mb = 1, .max_mb = 1000, .at_zero = 3, .span = 0.002, .steps = 200, .max_mult = max_mult}, src);
}

/// Flows that overlap heavily: sizes 100-1000 MB (2-20 ms alone at B) starting within `span`
/// seconds, so that tens to hundreds move at once and every event reaches a congested
/// component (the regime of a training step).
std::vector<Flow> congested_flows(const Topology& t, std::mt19937_64& rng, int count, double span,
                                  std::vector<NodeId>* src = nullptr) {
  return flows_of(t, rng, count, {.min_mb = 100, .max_mb = 1000, .at_zero = 10, .span = span, .steps = 1000, .max_mult = 2}, src);
}

/// Brute force: from scratch at every event, water-filling over all active flows, with each
/// multiplicity-m flow expanded into m separate flows. Written independently of the solver.
std::vector<double> reference(const Topology& t, const std::vector<Flow>& in) {
  struct F { std::vector<LinkId> path; double rem, act; std::size_t origin; bool active = false, done = false; double finish = 0; };
  std::vector<F> fs;
  for (std::size_t i = 0; i < in.size(); ++i) {
    for (int k = 0; k < static_cast<int>(in[i].multiplicity); ++k) {
      fs.push_back({in[i].path, in[i].bytes.value(), in[i].start.value() + t.path_latency(in[i].path).value(), i});
    }
  }
  double now = 0;
  while (true) {
    for (auto& f : fs) {
      if (!f.active && !f.done && f.act <= now * (1 + 1e-12) + 1e-18) {
        if (f.rem <= 0 || f.path.empty()) { f.done = true; f.finish = f.act; } else { f.active = true; }
      }
    }
    std::vector<double> rate(fs.size(), -1);
    std::vector<double> cap(t.num_links());
    for (LinkId l = 0; l < t.num_links(); ++l) cap[l] = t.link(l).bandwidth.value();
    while (true) {
      std::vector<int> count(t.num_links(), 0);
      for (std::size_t i = 0; i < fs.size(); ++i) {
        if (fs[i].active && rate[i] < 0) for (auto l : fs[i].path) ++count[l];
      }
      double best = 1e300;
      for (LinkId l = 0; l < t.num_links(); ++l) if (count[l] > 0) best = std::min(best, cap[l] / count[l]);
      if (best == 1e300) break;
      for (std::size_t i = 0; i < fs.size(); ++i) {
        if (!fs[i].active || rate[i] >= 0) continue;
        bool bottlenecked = false;
        for (auto l : fs[i].path) bottlenecked |= count[l] > 0 && cap[l] / count[l] <= best * (1 + 1e-12);
        if (bottlenecked) rate[i] = best;
      }
      for (std::size_t i = 0; i < fs.size(); ++i) {
        if (fs[i].active && rate[i] == best) for (auto l : fs[i].path) cap[l] -= best;
      }
    }
    double dt = 1e300;
    for (std::size_t i = 0; i < fs.size(); ++i) {
      if (fs[i].active) dt = std::min(dt, fs[i].rem / rate[i]);
      else if (!fs[i].done) dt = std::min(dt, fs[i].act - now);
    }
    if (dt == 1e300) break;
    now += dt;
    for (std::size_t i = 0; i < fs.size(); ++i) {
      if (!fs[i].active) continue;
      fs[i].rem -= rate[i] * dt;
      if (fs[i].rem <= 1e-9 * 1e-3 + 1e-12 * in[fs[i].origin].bytes.value()) { fs[i].active = false; fs[i].done = true; fs[i].finish = now; }
    }
  }
  std::vector<double> out(in.size(), 0.0);
  for (const auto& f : fs) out[f.origin] = std::max(out[f.origin], f.finish);
  return out;
}

}  // namespace

TEST_CASE("collectives::flow_model hand-computed cases", "[collectives][flow]") {
  const Topology line = test::torus({4}, false);  // 0 - 1 - 2 - 3, links of B and L
  const double S = 1e9;
  SECTION("single flow: latency, then bytes at full bandwidth") {
    const auto f = simulate_flows(line, {flow(line, 0, 3, S)});
    CHECK(f[0].value() == Approx(3 * L + S / B).epsilon(1e-12));
  }
  SECTION("two flows on one link share it equally") {
    const auto f = simulate_flows(line, {flow(line, 0, 1, S), flow(line, 0, 1, S)});
    CHECK(f[0].value() == Approx(L + 2 * S / B).epsilon(1e-12));
    CHECK(f[1].value() == Approx(L + 2 * S / B).epsilon(1e-12));
  }
  SECTION("opposite directions do not share (full duplex)") {
    const auto f = simulate_flows(line, {flow(line, 0, 1, S), flow(line, 1, 0, S)});
    CHECK(f[0].value() == Approx(L + S / B).epsilon(1e-12));
  }
  SECTION("parking lot") {
    // Short flows 0-1, 1-2, 2-3 start moving at L, the long flow 0-3 at 3L. Until 3L the short
    // flows run alone (2LB each); then every link is shared: B/2 each. Short flows finish at
    // 3L + 2(S - 2LB)/B = 2S/B - L; the long flow has S - 2LB done and finishes its last 2LB
    // alone at B: 2S/B + L.
    const auto f = simulate_flows(line, {flow(line, 0, 3, S), flow(line, 0, 1, S), flow(line, 1, 2, S),
                                         flow(line, 2, 3, S)});
    CHECK(f[1].value() == Approx(2 * S / B - L).epsilon(1e-12));
    CHECK(f[2].value() == Approx(2 * S / B - L).epsilon(1e-12));
    CHECK(f[0].value() == Approx(2 * S / B + L).epsilon(1e-12));
  }
  SECTION("a degraded link: its share of the bandwidth binds the flows that cross it") {
    // Link 1-2 at 0.4 B (both ways). The long flow 0-3 moves at 0.4 B from 3L; a flow 0-1
    // beside it runs alone from L to 3L (2LB done), then shares link 0-1, where max-min gives
    // it B - 0.4 B = 0.6 B.
    Topology t = line;
    t.degrade_link(t.route(1, 2).front(), 0.4);
    CHECK(simulate_flows(t, {flow(t, 0, 3, S)})[0].value() == Approx(3 * L + S / (0.4 * B)).epsilon(1e-12));
    CHECK(simulate_flows(t, {flow(t, 3, 0, S)})[0].value() == Approx(3 * L + S / (0.4 * B)).epsilon(1e-12));
    const auto f = simulate_flows(t, {flow(t, 0, 3, S), flow(t, 0, 1, S)});
    CHECK(f[1].value() == Approx(3 * L + (S - 2 * L * B) / (0.6 * B)).epsilon(1e-12));  // ends first
    CHECK(f[0].value() == Approx(3 * L + S / (0.4 * B)).epsilon(1e-12));
  }
  SECTION("staggered starts") {
    // Flow b starts 10 ms after a on the same link. a alone until 10 ms + L: 0.5 GB done;
    // then both at B/2: a's last 0.5 GB takes 20 ms (ends 30 ms + L); b then has 0.5 GB left
    // alone at B: 10 ms more, ending at 40 ms + L.
    const auto f = simulate_flows(line, {flow(line, 0, 1, S), flow(line, 0, 1, S, 0.01)});
    CHECK(f[0].value() == Approx(0.03 + L).epsilon(1e-12));
    CHECK(f[1].value() == Approx(0.04 + L).epsilon(1e-12));
  }
  SECTION("a flow group of multiplicity 3 takes 3 shares") {
    // 4 flows share one link: B/4 each, all finish at L + 4S/B.
    const auto f = simulate_flows(line, {flow(line, 0, 1, S, 0, 3.0), flow(line, 0, 1, S)});
    CHECK(f[0].value() == Approx(L + 4 * S / B).epsilon(1e-12));
    CHECK(f[1].value() == Approx(L + 4 * S / B).epsilon(1e-12));
  }
  SECTION("a flow that crosses a link k times (counts) takes k shares there, as naming it k times does") {
    // Flow a crosses 0-1 three times and 1-2 once (counts); b crosses 1-2 once. On 0-1 a alone
    // moves at B/3; on 1-2 a (1 share) and b share B, but a is held to B/3 at 0-1, so b gets
    // 2B/3. Both move from L (a's latency given): b ends at L + 1.5 S/B, then a still at B/3
    // (0-1 binds it) ends at L + 3S/B.
    const LinkId l01 = line.route(0, 1).front(), l12 = line.route(1, 2).front();
    Flow a{{l12, l01}, Bytes::of(S), Seconds::of(0), 1.0, Seconds::of(L), {1, 3}};
    Flow named{{l01, l12, l01, l01}, Bytes::of(S), Seconds::of(0), 1.0, Seconds::of(L)};
    for (const Flow& x : {a, named}) {
      const auto f = simulate_flows(line, {x, flow(line, 1, 2, S)});
      CHECK(f[0].value() == Approx(L + 3 * S / B).epsilon(1e-12));
      CHECK(f[1].value() == Approx(L + 1.5 * S / B).epsilon(1e-12));
    }
    Flow bad = a;
    bad.times = {1, 0};
    CHECK_THROWS_AS(simulate_flows(line, {bad}), std::logic_error);
    bad.times = {1};
    CHECK_THROWS_AS(simulate_flows(line, {bad}), std::logic_error);
  }
  SECTION("max-min, not proportional: a flow limited elsewhere leaves its share") {
    // Fat-tree k=4 with 2:1 oversubscribed uplinks (25 GB/s): flow 0->15 is capped at 25 GB/s
    // by its uplink; flow 0->1 shares only the host link with it and gets the other 25 GB/s.
    const Topology ft = test::fat_tree(4, 2.0);
    const auto f = simulate_flows(ft, {flow(ft, 0, 15, S), flow(ft, 0, 1, S)});
    const double lat_far = 6 * L, lat_near = 2 * L;
    // The near flow runs alone at B from 2L to 6L (4LB done); then both get B/2 on the host
    // link, so the near one ends at 6L + 2(S - 4LB)/B = 2S/B - 2L. The far flow moves at B/2
    // throughout (its uplink), ending at 6L + 2S/B.
    CHECK(f[1].value() == Approx(2 * S / B - 2 * L).epsilon(1e-9));
    CHECK(lat_near == 2 * L);
    CHECK(f[0].value() == Approx(lat_far + S / (B / 2)).epsilon(1e-9));
  }
  SECTION("zero bytes and local copies finish when their latency has elapsed") {
    const auto f = simulate_flows(line, {flow(line, 0, 2, 0.0, 0.5), Flow{{}, Bytes::of(5.0), Seconds::of(1.0), 1.0}});
    CHECK(f[0].value() == Approx(0.5 + 2 * L));
    CHECK(f[1].value() == Approx(1.0));
  }
}

TEST_CASE("collectives::flow_model equals the brute-force reference on random cases",
          "[collectives][flow]") {
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 40; ++trial) {
    const Topology t = trial % 2 ? test::fat_tree(4, 1.0 + trial % 3) : test::torus({3, 3}, trial % 4 == 0);
    const std::vector<Flow> flows = random_flows(t, rng, 2 + static_cast<int>(rng() % 25), 2);
    const auto got = simulate_flows(t, flows);
    const auto want = reference(t, flows);
    for (std::size_t i = 0; i < flows.size(); ++i) {
      INFO("trial " << trial << " flow " << i);
      CHECK(got[i].value() == Approx(want[i]).epsilon(1e-6));
    }
  }
}

TEST_CASE("collectives::flow_model equals the brute-force reference on congested random cases",
          "[collectives][flow]") {
  // 60-120 flows of 2-20 ms each starting within 4 ms on 16-18 endpoints: most of them move at
  // once, every link is shared, and each start or end changes the rates of flows far away.
  std::mt19937_64 rng(4242);
  for (int trial = 0; trial < 12; ++trial) {
    const Topology t = trial % 3 == 0   ? test::fat_tree(4, 1.0 + trial % 2)
                       : trial % 3 == 1 ? test::torus({3, 3, 2}, true)
                                        : test::dragonfly(1, 3, 1, 4);
    const std::vector<Flow> flows = congested_flows(t, rng, 60 + static_cast<int>(rng() % 61), 0.004);
    const auto got = simulate_flows(t, flows);
    const auto want = reference(t, flows);
    for (std::size_t i = 0; i < flows.size(); ++i) {
      INFO("trial " << trial << " flow " << i);
      CHECK(got[i].value() == Approx(want[i]).epsilon(1e-9));
    }
  }
}

TEST_CASE("collectives::flow_solver driven step by step: flows added as time passes, cancelled, and "
          "links partly taken",
          "[collectives][flow]") {
  const Topology line = test::torus({4}, false);  // 0 - 1 - 2 - 3, links of B and L
  const double S = 1e9;
  const LinkId l01 = line.route(0, 1).front();
  SECTION("a flow added at 10 ms shares from then on (the staggered case, incrementally)") {
    // a alone until 10 ms + L (0.5 GB done); then B/2 each: a ends at 30 ms + L, b at 40 ms + L.
    FlowSolver s(line);
    const auto a = s.add(flow(line, 0, 1, S));
    CHECK(s.next_event().value() == Approx(L));
    s.advance_to(Seconds::of(0.01));
    CHECK(s.now().value() == 0.01);  // the clock moves to the time asked for
    CHECK_THROWS_AS(s.add(flow(line, 0, 1, S, 0.0)), std::logic_error);  // before now() would rewrite the past
    s.advance_to(Seconds::of(0.01));
    const auto b = s.add(flow(line, 0, 1, S, 0.01));
    s.advance_to(Seconds::of(1.0));
    CHECK(s.finish(a).value() == Approx(0.03 + L).epsilon(1e-12));
    CHECK(s.finish(b).value() == Approx(0.04 + L).epsilon(1e-12));
    CHECK(s.unfinished() == 0);
  }
  SECTION("cancelling a flow gives its share back") {
    // Both at B/2 from L; at 10 ms + L a has 0.25 GB done, b is cancelled, and a's last
    // 0.75 GB take 15 ms at B: a ends at 25 ms + L; b never finishes.
    FlowSolver s(line);
    const auto a = s.add(flow(line, 0, 1, S));
    const auto b = s.add(flow(line, 0, 1, S));
    s.advance_to(Seconds::of(0.01 + L));
    CHECK(s.remaining(b).value() == Approx(0.75e9).epsilon(1e-12));
    s.cancel(b);
    CHECK(s.unfinished() == 1);
    s.advance_to(Seconds::of(1.0));
    CHECK(s.finish(a).value() == Approx(0.025 + L).epsilon(1e-12));
    CHECK(std::isinf(s.finish(b).value()));
  }
  SECTION("bandwidth reserved on a link for a while slows the flows on it for that while") {
    // a alone at B from L; from 10 ms + L half of the link is taken: 0.5 GB done, the next
    // 10 ms at B/2 move 0.25 GB; at 20 ms + L the link is whole again: 0.25 GB at B takes 5 ms.
    FlowSolver s(line);
    const auto a = s.add(flow(line, 0, 1, S));
    s.advance_to(Seconds::of(0.01 + L));
    s.reserve(l01, Bandwidth::of(B / 2));
    s.advance_to(Seconds::of(0.02 + L));
    s.reserve(l01, Bandwidth::of(0.0));
    s.advance_to(Seconds::of(1.0));
    CHECK(s.finish(a).value() == Approx(0.025 + L).epsilon(1e-12));
  }
  SECTION("a link wholly taken stops its flows until it is given back") {
    FlowSolver s(line);
    const auto a = s.add(flow(line, 0, 1, S));
    s.advance_to(Seconds::of(0.01 + L));
    s.reserve(l01, Bandwidth::of(B));
    s.advance_to(Seconds::of(0.05 + L));  // stopped: 0.5 GB left
    CHECK(std::isinf(s.finish(a).value()));
    s.reserve(l01, Bandwidth::of(0.0));
    s.advance_to(Seconds::of(1.0));
    CHECK(s.finish(a).value() == Approx(0.06 + L).epsilon(1e-12));
  }
}

TEST_CASE("collectives::flow_solver adding flows as their starts come equals the brute-force reference",
          "[collectives][flow]") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 6; ++trial) {
    const Topology t = trial % 2 ? test::fat_tree(4) : test::torus({3, 3}, true);
    std::vector<Flow> flows = congested_flows(t, rng, 40 + static_cast<int>(rng() % 40), 0.004);
    std::stable_sort(flows.begin(), flows.end(), [](const Flow& a, const Flow& b) { return a.start < b.start; });
    FlowSolver s(t);
    for (const auto& f : flows) {
      s.advance_to(f.start);  // the engine's way: time moves on, then the next transfer is ready
      s.add(f);
    }
    s.advance_to(Seconds::of(1e9));
    const auto want = reference(t, flows);
    for (std::size_t i = 0; i < flows.size(); ++i) {
      INFO("trial " << trial << " flow " << i);
      CHECK(s.finish(static_cast<FlowSolver::Id>(i)).value() == Approx(want[i]).epsilon(1e-9));
    }
  }
}

namespace {

/// Ranks as threads: the collectives a partitioned simulation needs, over shared memory (an
/// independent stand-in for the MPI exchange).
struct Hub {
  explicit Hub(int n) : ranks(n), bar(n), mins(n), sums(n), lists(n) {}
  int ranks;
  std::barrier<> bar;
  std::vector<double> mins;
  std::vector<std::vector<double>> sums;
  std::vector<std::vector<LinkId>> lists;
};

class ThreadExchange final : public FlowExchange {
 public:
  ThreadExchange(Hub& h, int rank) : h_(h), r_(rank) {}
  [[nodiscard]] int rank() const override { return r_; }
  [[nodiscard]] int ranks() const override { return h_.ranks; }
  [[nodiscard]] double min(double x) const override {
    h_.mins[r_] = x;
    h_.bar.arrive_and_wait();
    const double m = *std::min_element(h_.mins.begin(), h_.mins.end());
    h_.bar.arrive_and_wait();
    return m;
  }
  void sum(std::span<double> v) const override {
    h_.sums[r_].assign(v.begin(), v.end());
    h_.bar.arrive_and_wait();
    for (std::size_t i = 0; i < v.size(); ++i) {
      double s = 0.0;
      for (const auto& part : h_.sums) s += part[i];
      v[i] = s;
    }
    h_.bar.arrive_and_wait();
  }
  [[nodiscard]] std::vector<LinkId> shared_links(std::span<const LinkId> mine) const override {
    h_.lists[r_].assign(mine.begin(), mine.end());
    h_.bar.arrive_and_wait();
    std::map<LinkId, int> seen;
    for (const auto& list : h_.lists) {
      for (auto l : list) ++seen[l];
    }
    h_.bar.arrive_and_wait();
    std::vector<LinkId> out;
    for (const auto& [l, c] : seen) {
      if (c > 1) out.push_back(l);
    }
    return out;
  }

 private:
  Hub& h_;
  int r_;
};

}  // namespace

TEST_CASE("collectives::flow_model split over ranks gives one process's finish times to the last bit",
          "[collectives][flow][mpi]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    const Topology t = trial % 2 ? test::fat_tree(4, 1.0 + trial % 3) : test::torus({3, 3}, trial % 4 == 0);
    const auto n = static_cast<NodeId>(t.num_endpoints());
    std::vector<NodeId> src;
    // Half the trials congested (most flows moving at once), where the single process refills
    // only the links a change reaches and the ranks refill every link in combined rounds.
    std::vector<Flow> flows;
    if (trial % 2 == 0) {
      flows = congested_flows(t, rng, 60 + static_cast<int>(rng() % 100), 0.004, &src);
    } else {
      flows = random_flows(t, rng, 5 + static_cast<int>(rng() % 60), 3, &src);
    }
    const auto one = simulate_flows(t, flows);
    for (int ranks : {2, 3}) {
      // Each rank holds the flows its source endpoints start.
      Hub hub(ranks);
      std::vector<std::vector<std::size_t>> ids(static_cast<std::size_t>(ranks));
      for (std::size_t i = 0; i < flows.size(); ++i) ids[src[i] * static_cast<std::size_t>(ranks) / n].push_back(i);
      std::vector<std::vector<Seconds>> got(ids.size());
      std::vector<std::thread> threads;
      for (int r = 0; r < ranks; ++r) {
        threads.emplace_back([&, r] {
          std::vector<Flow> mine;
          for (auto i : ids[static_cast<std::size_t>(r)]) mine.push_back(flows[i]);
          const ThreadExchange ex(hub, r);
          got[static_cast<std::size_t>(r)] = simulate_flows(t, mine, nullptr, {}, {}, &ex);
        });
      }
      for (auto& th : threads) th.join();
      for (std::size_t r = 0; r < ids.size(); ++r) {
        for (std::size_t k = 0; k < ids[r].size(); ++k) {
          INFO("trial " << trial << ", " << ranks << " ranks, flow " << ids[r][k]);
          CHECK(got[r][k].value() == one[ids[r][k]].value());  // exactly
        }
      }
    }
  }
}

TEST_CASE("collectives::flow_model all_to_all copies split over ranks give one process's time to the last bit",
          "[collectives][flow][mpi]") {
  // Four copies of a direct all-to-all over disjoint groups of a tapered Clos (their classes
  // share leaves' egresses), as the step engine partitions a stage's groups over MPI ranks.
  const Topology t = test::clos(8, 2, 4, 1);
  std::vector<collectives::Schedule> all;
  for (NodeId g = 0; g < 4; ++g) {
    std::vector<NodeId> group;
    for (NodeId i = g; i < 16; i += 4) group.push_back(i);
    all.push_back(*collectives::build_schedule(t, collectives::Op::kAllToAll, collectives::Algo::kDirect, group,
                                               Bytes::of(1 << 24), {}, nullptr));
  }
  const auto flow = collectives::NetworkModel::build("flow", "test");
  collectives::CostParams one_p;
  one_p.overhead = Seconds::of(1e-6);
  const double one = flow->time(t, all, one_p).value();
  CHECK(one > flow->time(t, all.front(), one_p).value());  // the copies slow one another
  Hub hub(2);
  std::vector<double> got(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      const ThreadExchange ex(hub, r);
      collectives::CostParams p = one_p;
      p.exchange = &ex;
      p.schedule_offset = 2 * static_cast<std::size_t>(r);
      got[static_cast<std::size_t>(r)] =
          flow->time(t, std::span<const collectives::Schedule>(all).subspan(2 * static_cast<std::size_t>(r), 2), p).value();
    });
  }
  for (auto& th : threads) th.join();
  CHECK(got[0] == one);
  CHECK(got[1] == one);
}
