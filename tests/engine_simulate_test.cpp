// The program engine against hand-derived step times on a 2-4 GPU switch: streams and
// dependencies, a one-way pipeline send, a ring all-reduce as its dependency graph of
// transfers, rendezvous, and contention between a collective and a send on one fabric.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "collectives/flow_model.hpp"
#include "core/error.hpp"
#include "collectives/network_model.hpp"
#include "engine/simulate.hpp"
#include "engine/step.hpp"
#include "hardware/gpu_model.hpp"
#include "topology/spec.hpp"
#include "parallelism/model_math.hpp"
#include "parallelism/pipeline.hpp"
#include "parallelism/step_program.hpp"
#include "test_support.hpp"
#include "topology/families.hpp"

using namespace wallsim;
using namespace wallsim::parallelism;
using wallsim::engine::simulate;
using wallsim::engine::SimulateOptions;

namespace {

constexpr double B = 50e9;  // bytes/s of every link
constexpr double L = 1e-6;  // latency of every link (a GPU-to-GPU path crosses two)

topology::Topology sw(int n) {
  return topology::build_switch({.n = n, .link = {units::gbyte_per_s(50), units::us(1), {}}});
}

ProgramOp compute(double secs, StreamKind stream = StreamKind::kCompute, std::vector<std::uint32_t> deps = {}) {
  ProgramOp op;
  op.kind = ProgramOp::Kind::kCompute;
  op.stream = stream;
  op.duration = Seconds::of(secs);
  op.deps = std::move(deps);
  return op;
}

ProgramOp collective(std::uint32_t group, collectives::Op what, double bytes, std::vector<std::uint32_t> deps = {},
                     StreamKind stream = StreamKind::kDataParallel) {
  ProgramOp op;
  op.kind = ProgramOp::Kind::kCollective;
  op.stream = stream;
  op.group = group;
  op.op = what;
  op.algo = collectives::Algo::kRing;
  op.bytes = Bytes::of(bytes);
  op.deps = std::move(deps);
  return op;
}

ProgramOp p2p(bool send, std::uint32_t peer, double bytes, std::vector<std::uint32_t> deps = {}) {
  ProgramOp op;
  op.kind = send ? ProgramOp::Kind::kSend : ProgramOp::Kind::kRecv;
  op.stream = send ? StreamKind::kPipelineSend : StreamKind::kPipelineRecv;
  op.peer = peer;
  op.bytes = Bytes::of(bytes);
  op.deps = std::move(deps);
  return op;
}

SimulateOptions model(bool flow) {
  SimulateOptions o;
  o.flow = flow;
  return o;
}

}  // namespace

TEST_CASE("engine::simulate streams run in order, side by side, and wait on dependencies", "[engine]") {
  // Compute stream: a (10 ms), then c (1 ms, after a and b), then d (2 ms). Side stream: b
  // (5 ms) from 0, beside a. So c runs 10-11 ms, d 11-13 ms.
  Program p;
  p.ranks.push_back({0, {compute(0.010), compute(0.005, StreamKind::kSide), compute(0.001, StreamKind::kCompute, {0, 1}),
                         compute(0.002)}});
  const auto r = simulate(p, sw(2), model(true));
  CHECK(r.ops[0][1].end.value() == Approx(0.005));
  CHECK(r.ops[0][2].start.value() == Approx(0.010));
  CHECK(r.ops[0][3].start.value() == Approx(0.011));
  CHECK(r.makespan.value() == Approx(0.013));
  CHECK(r.compute[0].value() == Approx(0.018));
}

TEST_CASE("engine::simulate the two compute streams take the SMs in turn, and one's communication runs beside the other's kernels",
          "[engine]") {
  // Rank 0: compute stream A (1 ms), a send to rank 1 (0.5 ms), then C (1 ms, after the send);
  // second compute stream D, E (1 ms each). One kernel at a time, the compute stream first when
  // both are ready: A 0-1; at 1 the send starts and D runs 1-2; C, ready at 1.5, waits for the
  // SMs until D ends: C 2-3, E 3-4. Makespan 4 ms: the kernels back to back, the send hidden
  // (streams that did not share the SMs would end at 2.5 ms, one stream at 4.5).
  const double T = 0.5e-3, S = (T - 2 * L) * B;  // the send: 2L + S/B
  Program p;
  ProgramOp send = p2p(true, 1, S, {0});
  send.stream = StreamKind::kCompute;
  p.ranks.push_back({0, {compute(1e-3), send, compute(1e-3, StreamKind::kCompute, {1}), compute(1e-3, StreamKind::kCompute2),
                         compute(1e-3, StreamKind::kCompute2)}});
  p.ranks.push_back({1, {p2p(false, 0, 0.0)}});
  const auto r = simulate(p, sw(2), model(true));
  CHECK(r.ops[0][1].end.value() == Approx(1e-3 + T).epsilon(1e-12));
  CHECK(r.ops[0][3].start.value() == Approx(1e-3).epsilon(1e-12));
  CHECK(r.ops[0][2].start.value() == Approx(2e-3).epsilon(1e-12));
  CHECK(r.ops[0][4].start.value() == Approx(3e-3).epsilon(1e-12));
  CHECK(r.makespan.value() == Approx(4e-3).epsilon(1e-12));
}

TEST_CASE("engine::simulate a pipeline boundary is one send, one way: alpha + S/B", "[engine]") {
  // Stage 0 computes 10 ms and sends S to stage 1, which then computes 10 ms:
  // 10 ms + 2L + S/B + 10 ms, the same under both models (the send is alone).
  const double S = 1e9;
  Program p;
  p.ranks.push_back({0, {compute(0.010), p2p(true, 1, S, {0})}});
  p.ranks.push_back({1, {p2p(false, 0, 0.0), compute(0.010, StreamKind::kCompute, {0})}});
  for (bool flow : {true, false}) {
    INFO((flow ? "flow" : "analytic"));
    const auto r = simulate(p, sw(2), model(flow));
    CHECK(r.ops[1][0].end.value() == Approx(0.010 + 2 * L + S / B).epsilon(1e-12));
    CHECK(r.makespan.value() == Approx(0.020 + 2 * L + S / B).epsilon(1e-12));
    CHECK(r.transfers == 1);
  }
}

TEST_CASE("engine::simulate a send's narrowest link paces it, wherever it sits on the route", "[engine]") {
  // The send from GPU 0 to GPU 1 is the only traffic on both its links, so the engine hands the
  // solver one of them (links crossed by the same routes fill alike) unless their bandwidths
  // differ. Halve either link, or reserve half of it for outside traffic: 2L + S/(B/2).
  const double S = 1e9;
  Program p;
  p.ranks.push_back({0, {p2p(true, 1, S)}});
  p.ranks.push_back({1, {p2p(false, 0, 0.0)}});
  const auto healthy = sw(2);
  const auto route = healthy.route(0, 1);
  REQUIRE(route.size() == 2);
  for (auto l : route) {
    INFO("link " << l);
    auto t = sw(2);
    t.degrade_link(l, 0.5);
    CHECK(simulate(p, t, model(true)).makespan.value() == Approx(2 * L + 2 * S / B).epsilon(1e-12));
    std::vector<double> reserved(healthy.num_links(), 0.0);
    reserved[l] = B / 2;
    auto o = model(true);
    o.reserved_Bps = reserved;
    CHECK(simulate(p, healthy, o).makespan.value() == Approx(2 * L + 2 * S / B).epsilon(1e-12));
  }
  CHECK(simulate(p, healthy, model(true)).makespan.value() == Approx(2 * L + S / B).epsilon(1e-12));
}

TEST_CASE("engine::simulate a ring all-reduce is 2(n-1) steps of S/n, each waiting for the one before", "[engine]") {
  // 4 GPUs on a switch: every step sends S/4 from each GPU to the next on its own links:
  // 6 x (2L + S/(4B)), under both models.
  const double S = 4e8;
  Program p;
  p.groups.push_back({0, 1, 2, 3});
  for (topology::NodeId g = 0; g < 4; ++g) p.ranks.push_back({g, {collective(0, collectives::Op::kAllReduce, S)}});
  for (bool flow : {true, false}) {
    INFO((flow ? "flow" : "analytic"));
    const auto r = simulate(p, sw(4), model(flow));
    CHECK(r.makespan.value() == Approx(6 * (2 * L + S / (4 * B))).epsilon(1e-12));
    CHECK(r.transfers == 24);
  }
  SECTION("a member that comes late holds everyone (the collective starts when all are there)") {
    p.ranks[3].ops.insert(p.ranks[3].ops.begin(), compute(0.005));
    p.ranks[3].ops[1].deps = {0};
    const auto r = simulate(p, sw(4), model(true));
    CHECK(r.ops[0][0].start.value() == 0.0);  // posted at 0, waits
    CHECK(r.ops[0][0].end.value() == Approx(0.005 + 6 * (2 * L + S / (4 * B))).epsilon(1e-12));
  }
}

TEST_CASE("engine::simulate a ring step waits for the data it forwards, not for the slowest step", "[engine]") {
  // GPU 1's uplink has half its bandwidth left (reserved by other traffic): its sends take
  // D = 2L + 2s, the others d = 2L + s (s = S/(4B)). Member i sends step k once it has sent
  // step k-1 and received step k-1 from i-1: T_i(k) = max(T_i(k-1), T_{i-1}(k-1)) + d_i.
  // Worked out over the 6 steps, GPU 0's last send ends at 3D + 3d and its last receive (from
  // GPU 3) at 4D + 2d; GPUs 1 and 2 end at 6D. A barrier per step would end everyone at 6D;
  // senders that ignore what they receive would end GPU 0 at 6d.
  const double S = 4e8, s = S / (4 * B), d = 2 * L + s, D = 2 * L + 2 * s;
  Program p;
  p.groups.push_back({0, 1, 2, 3});
  for (topology::NodeId g = 0; g < 4; ++g) p.ranks.push_back({g, {collective(0, collectives::Op::kAllReduce, S)}});
  const auto t = sw(4);
  std::vector<double> reserved(t.num_links(), 0.0);
  reserved[t.route(1, 2).front()] = B / 2;
  SimulateOptions o = model(true);
  o.reserved_Bps = reserved;
  const auto r = simulate(p, t, o);
  CHECK(r.ops[0][0].end.value() == Approx(4 * D + 2 * d).epsilon(1e-12));
  CHECK(r.ops[1][0].end.value() == Approx(6 * D).epsilon(1e-12));
  CHECK(r.ops[2][0].end.value() == Approx(6 * D).epsilon(1e-12));
}

TEST_CASE("engine::simulate an all-to-all sends every pair's block at once, as NCCL's grouped sends do", "[engine]") {
  // 4 GPUs on a switch, an all-to-all of S (S/4 per pair): each GPU's uplink and downlink
  // carry its 3 blocks together, one latency: 2L + 3S/(4B), under both models, with one rank
  // per class or every rank. (The rotation's steps in turn would take 3(2L + S/(4B)).)
  const double S = 4e8;
  Program p;
  p.groups.push_back({0, 1, 2, 3});
  for (topology::NodeId g = 0; g < 4; ++g) {
    p.ranks.push_back({g, {collective(0, collectives::Op::kAllToAll, S)}});
    p.ranks.back().ops[0].algo = collectives::Algo::kDirect;
  }
  for (bool flow : {true, false}) {
    for (bool classes : {true, false}) {
      INFO((flow ? "flow" : "analytic") << (classes ? ", classes" : ", every rank"));
      SimulateOptions o = model(flow);
      o.classes = classes;
      const auto r = simulate(p, sw(4), o);
      CHECK(r.makespan.value() == Approx(2 * L + 3 * S / (4 * B)).epsilon(1e-12));
      double sent = 0.0;  // every block once: 12 of S/4
      for (std::size_t c = 0; c < r.scale_up_sent.size(); ++c) sent += r.scale_up_sent[c].value() + r.scale_out_sent[c].value();
      CHECK(sent == Approx(3 * S).epsilon(1e-12));
    }
  }
  SECTION("a send beside it on GPU 0's uplink takes a quarter of the link, as max-min says") {
    // GPU 0's uplink carries its 3 blocks and a send of S/4 to GPU 1, GPU 1's downlink 3
    // blocks and the send: 4 flows each, the lowest level (B/4), so the send ends at 2L + S/B,
    // as simulate_flows gives for the same 13 transfers.
    p.ranks[0].ops.push_back(p2p(true, 1, S / 4));
    p.ranks[1].ops.push_back(p2p(false, 0, 0.0));
    const auto t = sw(4);
    std::vector<collectives::Flow> same;
    for (topology::NodeId a = 0; a < 4; ++a) {
      for (topology::NodeId b = 0; b < 4; ++b) {
        if (a != b) same.push_back({t.route(a, b), Bytes::of(S / 4), Seconds::of(0), 1.0});
      }
    }
    same.push_back({t.route(0, 1), Bytes::of(S / 4), Seconds::of(0), 1.0});
    const auto replay = collectives::simulate_flows(t, same);
    const auto r = simulate(p, t, model(true));
    CHECK(r.ops[0][1].end.value() == Approx(replay.back().value()).epsilon(1e-12));
    CHECK(r.ops[0][1].end.value() == Approx(2 * L + S / B).epsilon(1e-12));
  }
}

TEST_CASE("engine::simulate a send and a collective on one link share it as max-min says", "[engine]") {
  // An all-gather of S over GPUs {0, 1} (one step: S/2 each way) and a send of S/2 from 0 to
  // 1, all from 0. Under flow, 0->1 carries two flows: each at B/2, both done at 2L + S/B;
  // 1->0 runs alone, 2L + S/(2B). The same transfers replayed by simulate_flows agree. Under
  // analytic nothing contends: everything ends at 2L + S/(2B).
  const double S = 1e9;
  Program p;
  p.groups.push_back({0, 1});
  p.ranks.push_back({0, {collective(0, collectives::Op::kAllGather, S), p2p(true, 1, S / 2)}});
  p.ranks.push_back({1, {collective(0, collectives::Op::kAllGather, S), p2p(false, 0, 0.0)}});
  const auto t = sw(2);
  const auto r = simulate(p, t, model(true));
  const std::vector<collectives::Flow> same{{t.route(0, 1), Bytes::of(S / 2), Seconds::of(0), 1.0},
                                            {t.route(1, 0), Bytes::of(S / 2), Seconds::of(0), 1.0},
                                            {t.route(0, 1), Bytes::of(S / 2), Seconds::of(0), 1.0}};
  const auto replay = collectives::simulate_flows(t, same);
  CHECK(r.ops[0][1].end.value() == Approx(2 * L + S / B).epsilon(1e-12));
  CHECK(r.ops[0][1].end.value() == Approx(replay[2].value()).epsilon(1e-12));
  CHECK(r.ops[0][0].end.value() == Approx(std::max(replay[0].value(), replay[1].value())).epsilon(1e-12));
  const auto a = simulate(p, t, model(false));
  CHECK(a.makespan.value() == Approx(2 * L + S / (2 * B)).epsilon(1e-12));
}

TEST_CASE("engine::simulate a data-parallel collective's NCCL kernel holds its SMs from the kernels that start beside it",
          "[engine]") {
  // Two ranks, each: an all-reduce of 10 MB on the data-parallel stream from 0 (a ring's two steps
  // of S/2: 4L + S/B, 0.2 ms);
  // kernels A1, A2 (1 ms each on 132 SMs, k/(1 - taken/132) on what is left); then, after A2, an
  // all-gather on the ZeRO-gather stream and kernel D beside it. A1 starts with the all-reduce
  // in flight: it runs on 132 - n SMs, 132/(132 - n) ms. A2 starts after the all-reduce is done:
  // 1 ms. D starts as the all-gather is posted: 132/(132 - n) ms again. No SMs taken (n = 0):
  // 3 ms in all.
  const double k = 1e-3, S = 10e6;
  auto kernel = [](std::vector<std::uint32_t> deps = {}) {
    ProgramOp op;
    op.kind = ProgramOp::Kind::kCompute;
    op.deps = std::move(deps);  // no duration: compute_time gives it
    return op;
  };
  Program p;
  p.groups.push_back({0, 1});
  std::vector<ProgramOp> ops{collective(0, collectives::Op::kAllReduce, S), kernel(), kernel(),
                             collective(0, collectives::Op::kAllGather, S, {2}, StreamKind::kParamGather), kernel({2})};
  ops[3].collective = 1;  // the group's second
  p.ranks.push_back({0, ops});
  p.ranks.push_back({1, ops});
  for (const std::uint32_t n : {0U, 16U, 24U}) {
    INFO("SMs held: " << n);
    SimulateOptions o = model(false);
    o.compute_time = [k](const ProgramOp& op, std::uint32_t) { return Seconds::of(k * 132.0 / (132.0 - op.kernel.sms_taken)); };
    if (n > 0) o.dp_sms = [n](std::uint32_t g) { return g == 0 ? n : 0U; };
    const auto r = simulate(p, sw(2), o);
    const double slow = k * 132.0 / (132.0 - n);
    auto took = [&](int i) { return r.ops[0][i].end.value() - r.ops[0][i].start.value(); };
    CHECK(r.ops[0][0].end.value() == Approx(4 * L + S / B).epsilon(1e-12));
    CHECK(took(1) == Approx(slow).epsilon(1e-12));
    CHECK(took(2) == Approx(k).epsilon(1e-12));
    CHECK(r.ops[0][4].start.value() == Approx(slow + k).epsilon(1e-12));
    CHECK(took(4) == Approx(slow).epsilon(1e-12));
    CHECK(r.makespan.value() == Approx(2 * slow + k).epsilon(1e-12));
  }
}

TEST_CASE("engine::simulate a data-parallel collective posted during a run of kernels slows the ones not begun",
          "[engine]") {
  // Two ranks, each: a 0.5 ms kernel on the side stream, then an all-reduce of 1 GB on the
  // data-parallel stream (4L + S/B, 20 ms); on the compute stream kernels A1, A2, A3 from 0
  // (1 ms each on 132 SMs). A1 is running when the all-reduce is posted at 0.5 ms: it keeps its
  // 1 ms. A2 and A3 begin beside the all-reduce: 132/116 ms each. The step ends with the
  // all-reduce, at 0.5 ms + 20 ms + 4L.
  const double k = 1e-3, S = 1e9, n = 16;
  auto kernel = [] {
    ProgramOp op;
    op.kind = ProgramOp::Kind::kCompute;  // no duration: compute_time gives it
    return op;
  };
  Program p;
  p.groups.push_back({0, 1});
  const std::vector<ProgramOp> ops{compute(0.5e-3, StreamKind::kSide), collective(0, collectives::Op::kAllReduce, S, {0}),
                                   kernel(), kernel(), kernel()};
  p.ranks.push_back({0, ops});
  p.ranks.push_back({1, ops});
  SimulateOptions o = model(false);
  o.compute_time = [k](const ProgramOp& op, std::uint32_t) { return Seconds::of(k * 132.0 / (132.0 - op.kernel.sms_taken)); };
  o.dp_sms = [n](std::uint32_t) { return static_cast<std::uint32_t>(n); };
  const auto r = simulate(p, sw(2), o);
  const double slow = k * 132.0 / (132.0 - n);
  CHECK(r.ops[0][2].end.value() == Approx(k).epsilon(1e-12));
  CHECK(r.ops[0][3].start.value() == Approx(k).epsilon(1e-12));
  CHECK(r.ops[0][3].end.value() == Approx(k + slow).epsilon(1e-12));
  CHECK(r.ops[0][4].end.value() == Approx(k + 2 * slow).epsilon(1e-12));
  CHECK(r.ops[0][1].end.value() == Approx(0.5e-3 + 4 * L + S / B).epsilon(1e-12));
  CHECK(r.makespan.value() == Approx(0.5e-3 + 4 * L + S / B).epsilon(1e-12));
  CHECK(r.compute[0].value() == Approx(k + 2 * slow + 0.5e-3).epsilon(1e-12));
}

TEST_CASE("engine::simulate names what cannot run", "[engine]") {
  Program lonely;
  lonely.ranks.push_back({0, {p2p(true, 1, 1e6)}});
  lonely.ranks.push_back({1, {compute(0.001)}});
  CHECK_THROWS_WITH(simulate(lonely, sw(2), model(true)), Catch::Contains("rank 0 op 0") && Catch::Contains("peer"));
  Program ahead;
  ahead.ranks.push_back({0, {compute(0.001, StreamKind::kCompute, {1}), compute(0.001)}});
  CHECK_THROWS_WITH(simulate(ahead, sw(2), model(true)), Catch::Contains("does not come before it on its stream"));
  Program nowhere;
  nowhere.ranks.push_back({0, {compute(0.001, StreamKind::kCompute, {7})}});
  CHECK_THROWS_WITH(simulate(nowhere, sw(2), model(true)), Catch::Contains("op 7"));
  // On another stream a later op may go first: op 0 waits for op 1 (1 ms, then 2 ms).
  Program across;
  across.ranks.push_back({0, {compute(0.002, StreamKind::kCompute, {1}), compute(0.001, StreamKind::kCompute2)}});
  CHECK(simulate(across, sw(2), model(true)).makespan.value() == Approx(0.003).epsilon(1e-12));
  // Two such waits in a circle never start, and say so.
  Program circle;
  circle.ranks.push_back({0, {compute(0.002, StreamKind::kCompute, {1}), compute(0.001, StreamKind::kCompute2, {0})}});
  CHECK_THROWS_WITH(simulate(circle, sw(2), model(true)), Catch::Contains("never starts"));
  Program missing;
  missing.groups.push_back({0, 1});
  missing.ranks.push_back({0, {collective(0, collectives::Op::kAllReduce, 1e6)}});
  missing.ranks.push_back({1, {compute(0.001)}});
  CHECK_THROWS_WITH(simulate(missing, sw(2), model(true)), Catch::Contains("never reaches"));
}

namespace {

/// A switch whose links cost nothing: pipeline sends of 0 bytes take no time.
topology::Topology instant(int n) { return topology::build_switch({.n = n, .link = {units::gbyte_per_s(1e9), Seconds{}, {}}}); }

std::vector<topology::NodeId> first_gpus(int n) {
  std::vector<topology::NodeId> g;
  for (int i = 0; i < n; ++i) g.push_back(static_cast<topology::NodeId>(i));
  return g;
}

}  // namespace

TEST_CASE("engine::simulate pipeline programs: 1F1B and GPipe take (m+p-1)(f+b), interleaving cuts the bubble by v",
          "[engine]") {
  // Forward f, backward b = 2f per micro-batch and stage; free sends. 1F1B and GPipe both
  // take (m + p - 1)(f + b); interleaved with v chunks of f/v and b/v takes
  // m(f + b) + (p - 1)(f + b)/v (Narayanan et al., SC'21, section 2.2).
  const double f = 1e-3, b = 2e-3;
  const int pp = 4;
  for (int m : {4, 8, 12}) {
    INFO("m = " << m);
    for (auto sched : {PipeSchedule::kOneFOneB, PipeSchedule::kGpipe}) {
      const auto prog = pipeline_program(sched, pp, 1, m, 1, first_gpus(pp),
                                         {Seconds::of(f), Seconds::of(b), {}, Bytes::of(0), Bytes::of(0)});
      const auto r = simulate(prog, instant(pp), model(true));
      CHECK(r.makespan.value() == Approx((m + pp - 1) * (f + b)).epsilon(1e-12));
    }
    for (int v : {2, 4}) {
      INFO("v = " << v);
      const auto prog = pipeline_program(PipeSchedule::kInterleaved, pp, v, m, 1, first_gpus(pp),
                                         {Seconds::of(f / v), Seconds::of(b / v), {}, Bytes::of(0), Bytes::of(0)});
      const auto r = simulate(prog, instant(pp), model(true));
      CHECK(r.makespan.value() == Approx(m * (f + b) + (pp - 1) * (f + b) / v).epsilon(1e-12));
    }
  }
}

TEST_CASE("engine::simulate pipeline programs: ZB-V with equal F, B and W idles only while the first micro-batch comes down",
          "[engine]") {
  // ZB-V (pipeline.hpp), free sends, every pass of a chunk t. Rank pp-1 cannot start before
  // the first micro-batch has crossed pp-1 chunks, (pp-1)t, and has 6m passes to run; with
  // m >= 2pp-1 the order runs them back to back from there (the zero-bubble paper's claim for
  // equal times): 6mt + (pp-1)t. 1F1B with the same work per stage (F 2t, B 4t) takes
  // (m+pp-1)6t. The turn of the V is on one rank: nothing is sent there.
  const double t = 1e-3;
  for (int pp : {2, 4}) {
    for (int m : {2 * pp - 1, 2 * pp, 4 * pp}) {
      INFO("pp " << pp << ", m " << m);
      const auto prog = pipeline_program(PipeSchedule::kZeroBubbleV, pp, 2, m, 1, first_gpus(pp),
                                         {Seconds::of(t), Seconds::of(t), Seconds::of(t), Bytes::of(0), Bytes::of(0)});
      CHECK(simulate(prog, instant(pp), model(true)).makespan.value() == Approx((6 * m + pp - 1) * t).epsilon(1e-12));
      const auto one = pipeline_program(PipeSchedule::kOneFOneB, pp, 1, m, 1, first_gpus(pp),
                                        {Seconds::of(2 * t), Seconds::of(4 * t), {}, Bytes::of(0), Bytes::of(0)});
      CHECK(simulate(one, instant(pp), model(true)).makespan.value() == Approx((m + pp - 1) * 6 * t).epsilon(1e-12));
      std::size_t sends = 0;
      for (std::uint32_t r = 0; r < static_cast<std::uint32_t>(pp); ++r) {
        for (const auto& op : prog.ops_of(r)) {
          if (op.kind != ProgramOp::Kind::kSend && op.kind != ProgramOp::Kind::kRecv) continue;
          CHECK(op.peer != r);
          sends += op.kind == ProgramOp::Kind::kSend;
        }
      }
      // 2pp-2 boundaries between ranks, each crossed by every micro-batch both ways.
      CHECK(sends == static_cast<std::size_t>(2 * (2 * pp - 2) * m));
    }
  }
}

TEST_CASE("engine::simulate pipeline programs: DualPipe's bubble is (pp/2 - 1)(F&B + B - 3W), as its authors give it",
          "[engine]") {
  // DualPipe (deepseek-ai/DualPipe, README's table): each rank runs m forwards and m whole
  // backwards, half each way, and idles (pp/2 - 1)(F&B + B - 3W): B a whole backward (input
  // and weight gradients), W its weight part, F&B an overlapped forward and backward (here
  // nothing overlaps, so F + B). Free sends. On 2 ranks there is no bubble whatever the costs;
  // on 4 with equal F, B-input and W (the table's figure) the bubble is the table's. On 8 the
  // engine, bound by data only (its pairs wait for both inputs and send both outputs at once),
  // idles at least the table's bubble and less than 1F1B's (pp - 1)(F + B).
  struct Costs {
    double F, Bi, W;
  };
  for (const Costs c : {Costs{1e-3, 1e-3, 1e-3}, Costs{1e-3, 1.5e-3, 0.5e-3}, Costs{2e-3, 1e-3, 0.5e-3}}) {
    const double B = c.Bi + c.W;
    for (int pp : {2, 4, 8}) {
      if (pp > 2 && c.F != c.W) continue;
      for (int m : {2 * pp, 2 * pp + 2, 4 * pp}) {
        INFO("pp " << pp << ", m " << m << ", F " << c.F << ", B " << c.Bi << " + " << c.W);
        const auto prog = pipeline_program(PipeSchedule::kDualPipe, pp, 1, m, 1, first_gpus(pp),
                                           {Seconds::of(c.F), Seconds::of(c.Bi), Seconds::of(c.W), Bytes::of(0), Bytes::of(0)});
        const auto r = simulate(prog, instant(pp), model(true));
        const double table = (pp / 2 - 1) * ((c.F + B) + B - 3 * c.W);
        if (pp < 8) {
          CHECK(r.makespan.value() == Approx(m * (c.F + B) + table).epsilon(1e-12));
        } else {  // between the table's bubble and 1F1B's (m + pp - 1)(F + B)
          CHECK(r.makespan.value() >= m * (c.F + B) + table - 1e-12);
          CHECK(r.makespan.value() < (m + pp - 1) * (c.F + B));
        }
      }
    }
  }
}

TEST_CASE("engine::simulate pipeline programs: interleaving with a micro-batch count that is not a multiple of pp",
          "[engine]") {
  // pp 2, v 2, m 3 (Llama 3 section 3.3.2). Chunk forward 1, backward 2 (units of f), free
  // sends; Fmc is the forward of micro-batch m, chunk c. Hand-run:
  // - In groups of 2 (micro-batches 0 and 1 through chunk 0 then 1, then micro-batch 2 alone;
  //   plan.cpp refuses it, but the engine must run it):
  //   stage 0: F00 0-1 F10 1-2 F01 2-3 F11 3-4 F20 4-5 B01 6-8 F21 10-11 B11 11-13 B00 13-15
  //            B10 15-17 B21 17-19 B20 21-23
  //   stage 1: F00 1-2 F10 2-3 F01 3-4 B01 4-6 F11 6-7 B11 7-9 F20 9-10 B00 10-12 F21 12-13
  //            B10 13-15 B21 15-17 B20 19-21
  //   Stage 1's sends (a gradient of micro-batch 1 before micro-batch 2's activation) come in
  //   another order than stage 0 receives them.
  // - In one group of 3:
  //   stage 0: F00 0-1 F10 1-2 F20 2-3 F01 3-4 F11 4-5 F21 5-6 B01 7-9 B11 10-12 B21 13-15
  //            B00 15-17 B10 17-19 B20 19-21
  //   stage 1: F00 1-2 F10 2-3 F20 3-4 F01 4-5 B01 5-7 F11 7-8 B11 8-10 F21 10-11 B21 11-13
  //            B00 13-15 B10 15-17 B20 17-19
  const double f = 1e-3;
  for (auto [group, span] : {std::pair{2, 23.0}, std::pair{3, 21.0}}) {
    INFO("groups of " << group);
    const auto prog = pipeline_program(PipeSchedule::kInterleaved, 2, 2, 3, 1, first_gpus(2),
                                       {Seconds::of(f), Seconds::of(2 * f), {}, Bytes::of(0), Bytes::of(0)}, group);
    const auto r = simulate(prog, instant(2), model(true));
    CHECK(r.makespan.value() == Approx(span * f).epsilon(1e-12));
  }
}

TEST_CASE("engine::simulate pipeline programs send activations one way and all-reduce gradients after the last backward",
          "[engine]") {
  const double f = 1e-3, b = 2e-3, S = 1e8, G = 1e9;
  SECTION("two stages, one micro-batch: f, send, f, b, send back, b") {
    const auto prog = pipeline_program(PipeSchedule::kOneFOneB, 2, 1, 1, 1, first_gpus(2),
                                       {Seconds::of(f), Seconds::of(b), {}, Bytes::of(S), Bytes::of(0)});
    const auto r = simulate(prog, sw(2), model(true));
    CHECK(r.makespan.value() == Approx(2 * f + 2 * b + 2 * (2 * L + S / B)).epsilon(1e-12));
    CHECK(r.transfers == 2);
  }
  SECTION("no pipeline, two replicas: the all-reduce of G follows the last backward") {
    // 2(f + b) of compute, then a ring of 2: 2 steps of G/2 each way.
    const auto prog = pipeline_program(PipeSchedule::kOneFOneB, 1, 1, 2, 2, first_gpus(2),
                                       {Seconds::of(f), Seconds::of(b), {}, Bytes::of(0), Bytes::of(G)});
    for (bool flow : {true, false}) {
      const auto r = simulate(prog, sw(2), model(flow));
      CHECK(r.makespan.value() == Approx(2 * (f + b) + 2 * (2 * L + G / (2 * B))).epsilon(1e-12));
    }
  }
}

namespace {

/// A 2-layer model small enough to reason about, on one node of `gpus` GPUs, with `parallel`.
struct Tiny {
  Scenario s;
  Plan p;
  double act;  // bytes of one micro-batch's activation: 2 x micro_batch x seq x hidden
};
/// The 2-layer model (`model`'s keys added to it; its own `layers` if it has them) on `cluster` with `parallel`, 128 tokens a sequence.
Tiny tiny_on(const std::string& cluster, const std::string& model, const std::string& parallel, int global_batch) {
  const std::string layers = model.find("layers:") == std::string::npos ? "layers: 2, " : "";
  const std::string text = "cluster: " + cluster + "\nmodel: {" + layers + "hidden: 256, ffn: 1024, vocab: 512, " + model +
                           "}\ntraining: {seq_len: 128, global_batch: " + std::to_string(global_batch) + ", micro_batch: 1}\n"
                           "parallel: " + parallel + "\n";
  Tiny t{parse_scenario(text, "t.yaml", {}, test::presets()), {}, 2.0 * 128 * 256};
  t.p = make_plan(t.s);
  return t;
}
Tiny tiny(int gpus, const std::string& parallel, int global_batch = 1) {
  return tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: " + std::to_string(gpus) + "}", "heads: 4, kv_heads: 4", parallel, global_batch);
}

SimulateOptions timed(double per_kernel) {
  SimulateOptions o;
  o.compute_time = [per_kernel](const ProgramOp&, std::uint32_t) { return Seconds::of(per_kernel); };
  return o;
}

}  // namespace

TEST_CASE("engine::simulate step programs: tensor parallelism is exposed on the compute stream", "[engine]") {
  // Compute free, 2 GPUs: every TP collective is one ring step of A/2 (2L + A/(2B)) per
  // direction (all-gather, reduce-scatter), or two (all-reduce). Per layer and pass, SP runs
  // 2 all-gathers and 2 reduce-scatters, plain TP 2 all-reduces: 4 steps either way, forward
  // and backward: 2 layers x 8 = 16 steps. Full recompute reruns the forward's: 24.
  for (const char* sp : {"true", "false"}) {
    INFO("sp " << sp);
    const Tiny t = tiny(2, std::string("{tp: 2, sp: ") + sp + "}");
    const double step = 2 * L + t.act / (2 * B);
    CHECK(simulate(step_program(*t.s.model, t.p), sw(2), timed(0.0)).makespan.value() == Approx(16 * step).epsilon(1e-9));
    const Tiny full = tiny(2, std::string("{tp: 2, recompute: full, sp: ") + sp + "}");
    CHECK(simulate(step_program(*full.s.model, full.p), sw(2), timed(0.0)).makespan.value() == Approx(24 * step).epsilon(1e-9));
    const Tiny sel = tiny(2, std::string("{tp: 2, recompute: selective, sp: ") + sp + "}");
    CHECK(simulate(step_program(*sel.s.model, sel.p), sw(2), timed(0.0)).makespan.value() == Approx(16 * step).epsilon(1e-9));
  }
}

TEST_CASE("engine::simulate step programs: a pipeline boundary sends the activation one way each pass", "[engine]") {
  // Compute free, 2 stages, 2 micro-batches under 1F1B, each send T = 2L + A/B: stage 0
  // sends F0 then F1 (0-T, T-2T); stage 1 sends B0 once F0 is in (T-2T, on its own uplink),
  // and B1 once F1 is in (2T-3T): 3T.
  const Tiny t = tiny(2, "{pp: 2}", 2);
  CHECK(simulate(step_program(*t.s.model, t.p), sw(2), timed(0.0)).makespan.value() ==
        Approx(3 * (2 * L + t.act / B)).epsilon(1e-9));
}

TEST_CASE("engine::simulate step programs: data-parallel buckets hide behind the backward but the last", "[engine]") {
  // 2 replicas, 1 ms per kernel: a layer's backward (tens of ms) hides the bucket of the
  // layer after it, so only the last bucket (layer 0 and the embedding; the final norm and
  // head go with layer 1, whose gradients come first) shows after the compute; the optimizer
  // is compute. Without overlap both buckets show.
  // All-reduce over 2 GPUs of G bytes: 2 steps of G/2; ZeRO-1 reduce-scatters (1 step) and
  // all-gathers the updated weights W (1 step of W/2) on the compute stream.
  const auto pc = count_params(*tiny(2, "{dp: 2}", 2).s.model);
  const double tail = pc.dense_layer + pc.embedding;  // layer 0's bucket
  const double all = 2 * pc.dense_layer + pc.embedding + pc.lm_head + 256;
  auto ring_step = [](double bytes) { return 2 * L + bytes / (2 * B); };
  const Tiny t = tiny(2, "{dp: 2}", 2);
  const auto r = simulate(step_program(*t.s.model, t.p), sw(2), timed(1e-3));
  CHECK(r.makespan.value() == Approx(r.compute[0].value() + 2 * ring_step(2 * tail)).epsilon(1e-9));
  const Tiny late = tiny(2, "{dp: 2, overlap_grad_reduce: false}", 2);
  const auto l = simulate(step_program(*late.s.model, late.p), sw(2), timed(1e-3));
  CHECK(l.makespan.value() == Approx(l.compute[0].value() + 2 * ring_step(2 * (all - tail)) + 2 * ring_step(2 * tail)).epsilon(1e-9));
  const Tiny z = tiny(2, "{dp: 2, zero: 1}", 2);
  const auto zr = simulate(step_program(*z.s.model, z.p), sw(2), timed(1e-3));
  CHECK(zr.makespan.value() == Approx(zr.compute[0].value() + ring_step(2 * tail) + ring_step(2 * all)).epsilon(1e-9));
  // Gradients reduced in fp32 (Llama 3, torchtitan): 4 bytes a parameter in the last bucket
  // and in the gradient memory; the composed step's exposed reduction grows too.
  const Tiny f32 = tiny(2, "{dp: 2, grad_reduce_dtype: fp32}", 2);
  const auto fr = simulate(step_program(*f32.s.model, f32.p), sw(2), timed(1e-3));
  CHECK(fr.makespan.value() == Approx(fr.compute[0].value() + 2 * ring_step(4 * tail)).epsilon(1e-9));
  CHECK(engine::memory_per_gpu(f32.s, f32.p).gradients.value() == Approx(4 * all));
  CHECK(engine::memory_per_gpu(t.s, t.p).gradients.value() == Approx(2 * all));
  const auto net = collectives::NetworkModel::build("analytic", "test");
  auto composed = [&](const Tiny& x) {
    return engine::simulate_step(x.s, x.p, topology::build_step_fabric(x.s.cluster), engine::step_options(net.get())).exposed_comm.value();
  };
  CHECK(composed(f32) > composed(t) * 1.5);
}

TEST_CASE("engine::simulate step programs: a failed cable costs the same under group 0 as under its mirror", "[engine]") {
  // 2 nodes x 8 GPUs, TP 8 inside each node, DP 2 across (the case that one representative
  // group could not see): every rank is simulated, so GPU 0's NVSwitch cable and GPU 8's, its
  // mirror, slow the step equally (GPU 0's TP traffic leaves the node through its NIC).
  const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_out: {topology: clos, bandwidth: 50 GB/s}}",
                         "heads: 8, kv_heads: 8", "{tp: 8, dp: 2, sp: true}", 2);
  const Program prog = step_program(*t.s.model, t.p);
  auto fabric = [] {
    return topology::build_clos({.nodes = 2, .gpus_per_node = 8, .nodes_per_leaf = 2, .spines = 1,
                                 .scale_up = {units::gbyte_per_s(450), units::us(1), {}},
                                 .scale_out = {units::gbyte_per_s(50), units::us(1), {}}});
  };
  auto cable = [](const topology::Topology& t, const std::string& from, const std::string& to) {
    for (topology::LinkId l = 0; l < t.num_links(); ++l) {
      if (t.node_name(t.link_source(l)) == from && t.node_name(t.link_target(l)) == to) return l;
    }
    FAIL("no cable " << from << "-" << to);
    return topology::LinkId{0};
  };
  const double healthy = simulate(prog, fabric(), timed(1e-5)).makespan.value();
  auto t0 = fabric();
  t0.fail_link(cable(t0, "gpu0", "nvswitch0"));
  auto t8 = fabric();
  t8.fail_link(cable(t8, "gpu8", "nvswitch1"));
  const double first = simulate(prog, t0, timed(1e-5)).makespan.value();
  const double mirror = simulate(prog, t8, timed(1e-5)).makespan.value();
  CHECK(first > healthy);
  CHECK(first == Approx(mirror).epsilon(1e-12));
}

TEST_CASE("engine::simulate step programs: ZeRO-2 scatters gradients per layer, ZeRO-3 also gathers weights a layer ahead",
          "[engine]") {
  // Alpha-beta, compute free, 2 replicas, 1 micro-batch; g(x) = 2L + x/(2B) is one ring step of
  // a gather or scatter of x bytes over 2 GPUs. Layer 0 carries the embedding (P0), layer 1 the
  // final norm and head (P1); weights and gradients are 2 bytes per parameter: g0 = g(2 P0),
  // g1 = g(2 P1).
  // ZeRO-2: backward scatters layer 1 (0-g1), then layer 0 (g1-g1+g0); the optimizer; then the
  //   updated weights are gathered: + g(2 (P0 + P1)).
  // ZeRO-3: forward gathers layer 0 (0-g0), layer 1 (g0-g0+g1, once layer 0 started); backward
  //   gathers layer 1 again (to g0+2g1), scatters its gradients (to g0+3g1) while gathering
  //   layer 0 (to 2g0+2g1), then scatters layer 0's after both: max(g0+3g1, 2g0+2g1) + g0; no
  //   gather after the optimizer.
  const Tiny t2 = tiny(2, "{dp: 2, zero: 2}", 2), t3 = tiny(2, "{dp: 2, zero: 3}", 2);
  const auto pc = count_params(*t2.s.model);
  const double P0 = pc.dense_layer + pc.embedding, P1 = pc.dense_layer + pc.lm_head + 256;
  auto g = [](double bytes) { return 2 * L + bytes / (2 * B); };
  const double g0 = g(2 * P0), g1 = g(2 * P1);
  SimulateOptions o = timed(0.0);
  o.flow = false;
  CHECK(simulate(step_program(*t2.s.model, t2.p), sw(2), o).makespan.value() ==
        Approx(g0 + g1 + g(2 * (P0 + P1))).epsilon(1e-9));
  CHECK(simulate(step_program(*t3.s.model, t3.p), sw(2), o).makespan.value() ==
        Approx(std::max(g0 + 3 * g1, 2 * g0 + 2 * g1) + g0).epsilon(1e-9));
  // Under flow the backward's gather and scatter share both directions of the link: slower.
  CHECK(simulate(step_program(*t3.s.model, t3.p), sw(2), timed(0.0)).makespan.value() >
        (std::max(g0 + 3 * g1, 2 * g0 + 2 * g1) + g0) * (1 + 1e-6));
}

TEST_CASE("engine::simulate step programs: expert parallelism dispatches and combines around the experts", "[engine]") {
  // A 2-layer MoE (2 experts, top-1) on 2 GPUs with EP 2 inside DP 2; alpha-beta, 1 ms per
  // kernel. Each MoE layer's forward sends its tokens to their experts and back (2
  // all-to-alls), its backward the same: 8 on the compute stream, each one direct exchange of
  // X/2 each way, 2L + X/(2B), X the activation's bytes (top-1, capacity factor 1). The dense
  // gradients' buckets hide behind the backward but the last (layer 0's dense part and the
  // embedding: an all-reduce, 2 steps of G/2); expert weights are not replicated (expert DP 1).
  const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", "heads: 4, kv_heads: 4, experts: 2, top_k: 1, moe_ffn: 512",
                         "{dp: 2, ep: 2}", 2);
  const auto pc = count_params(*t.s.model);
  const double X = 2.0 * 128 * 256, G = 2.0 * (pc.moe_layer - pc.moe_experts + pc.embedding);
  SimulateOptions o = timed(1e-3);
  o.flow = false;
  const auto r = simulate(step_program(*t.s.model, t.p), sw(2), o);
  CHECK(r.makespan.value() ==
        Approx(r.compute[0].value() + 8 * (2 * L + X / (2 * B)) + 2 * (2 * L + G / (2 * B))).epsilon(1e-9));
  // FP8 dispatch (DeepSeek-V3): the 2 forward dispatches carry 1 byte per value and a 4-byte
  // scale per 128, d = 1 + 4/128 bytes instead of 2; combines and backward exchanges stay bf16.
  const Tiny f8 = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", "heads: 4, kv_heads: 4, experts: 2, top_k: 1, moe_ffn: 512",
                          "{dp: 2, ep: 2}", 2);
  Scenario s8 = f8.s;
  s8.training->moe_dispatch = "fp8";
  const Plan p8 = make_plan(s8);
  const double d = 1.0 + 4.0 / 128.0;
  const auto r8 = simulate(step_program(*s8.model, p8), sw(2), o);
  CHECK(r8.makespan.value() == Approx(r8.compute[0].value() + 2 * (2 * L + X * d / 2 / (2 * B)) + 6 * (2 * L + X / (2 * B)) +
                                      2 * (2 * L + G / (2 * B)))
                                   .epsilon(1e-9));
}

TEST_CASE("engine::simulate step programs: DeepEP's dispatch crosses the scale-out once per domain a token's experts touch",
          "[engine]") {
  // 2 nodes x 4 GPUs, EP 8 over both; 8 experts (4 a node) in 2 router groups, top-2 within 1
  // group: each token's experts sit on one node, the other with chance 1/2. Each of the 8
  // all-to-alls (2 MoE layers, dispatch and combine, forward and backward) carries S = 2 X (top-2,
  // X a micro-batch's activation bytes) a rank. The all-to-all dispatcher sends S / 8 to each
  // of the 4 ranks of the other node: S / 2 over the scale-out. DeepEP sends the token once to
  // the other node's GPU of its index if its experts are there: S / 2 (a copy) x 1/2 = S / 4.
  const std::string cluster = "{gpu: h100-sxm, nodes: 2, gpus_per_node: 4, scale_out: {topology: clos, bandwidth: 50 GB/s}}";
  const std::string moe = "heads: 4, kv_heads: 4, experts: 8, top_k: 2, moe_ffn: 512, router_groups: 2, router_group_topk: 1";
  const Tiny all = tiny_on(cluster, moe, "{dp: 8, ep: 8}", 8);
  const Tiny deep = tiny_on(cluster, moe, "{dp: 8, ep: 8, moe_token_dispatcher: deepep}", 8);
  CHECK(deep.p.dispatch_rail_share == Approx(0.5 / 2));
  const auto fabric = topology::build_clos({.nodes = 2, .gpus_per_node = 4, .nodes_per_leaf = 1, .spines = 1,
                                            .scale_up = {units::gbyte_per_s(450), units::us(1), {}},
                                            .scale_out = {units::gbyte_per_s(50), units::us(2), {}}});
  auto scale_out = [&](const Tiny& t) {
    const auto r = simulate(step_program(*t.s.model, t.p), fabric, timed(1e-4));
    double sum = 0.0;
    for (const auto& b : r.scale_out_sent) sum += b.value();
    return sum;
  };
  const double S = 2.0 * all.act;
  CHECK(scale_out(all) - scale_out(deep) == Approx(8 * 8 * (S / 2 - S / 4)).epsilon(1e-9));
  // The composed step refuses it, naming the key.
  CHECK(deep.p.event_engine_only() == "parallel.moe_token_dispatcher");
}

TEST_CASE("engine::simulate step programs: a multi-token-prediction module runs on the last stage with its layer's exchanges",
          "[engine]") {
  // A 2-layer MoE (2 experts, top-1), EP 2 in DP 2, pp 1, one micro-batch: each MoE layer
  // exchanges its tokens 4 times a step (dispatch and combine, forward and backward). One MTP
  // module adds a MoE layer: 12 all-to-alls, not 8; its projection, norms and second head run
  // forward and backward; it holds its layer's dense part whole and half the experts. Model
  // FLOPs (MFU's) leave it out.
  const std::string moe = "layers: 2, heads: 4, kv_heads: 4, experts: 2, top_k: 1, moe_ffn: 512";
  const Tiny plain = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", moe, "{dp: 2, ep: 2}", 2);
  const Tiny mtp = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", moe + ", mtp_layers: 1", "{dp: 2, ep: 2}", 2);
  auto count = [](const Tiny& t, const std::string& name, bool whole) {
    const Program prog = step_program(*t.s.model, t.p);
    int n = 0;
    for (const auto& op : prog.ops_of(0)) n += whole ? op.name == name : op.name.find(name) != std::string::npos;
    return n;
  };
  CHECK(count(plain, "EP all-to-all", false) == 8);
  CHECK(count(mtp, "EP all-to-all", false) == 12);
  for (const char* k : {"mtp hidden norm", "mtp embedding norm", "mtp projection", "mtp lm head", "mtp cross entropy"}) {
    INFO(k);
    CHECK(count(plain, k, false) == 0);
    CHECK(count(mtp, k, true) == 1);  // forward; the backward's carry their own names
  }
  const auto pc = count_params(*mtp.s.model);
  const auto [d0, e0] = parallelism::rank_params(*plain.s.model, plain.p, 0);
  const auto [d1, e1] = parallelism::rank_params(*mtp.s.model, mtp.p, 0);
  CHECK(d1 - d0 == Approx(pc.mtp - pc.mtp_experts));
  CHECK(e1 - e0 == Approx(pc.mtp_experts / 2));
  CHECK(model_forward_flops_per_sequence(*mtp.s.model, 128).value() == model_forward_flops_per_sequence(*plain.s.model, 128).value());
  // Its activations: its layer's (as layer 1's), the projection's inputs and outputs (4 x 128
  // tokens x 256 x 2 bytes) and its fp32 logits (128 x 512 x 4 bytes), once in flight.
  const double layer = parallelism::layer_activation_bytes(*plain.s.model, 1, shard_of(*plain.s.model, plain.p), plain.p.recompute,
                                                           plain.p.dropout).value();
  CHECK(engine::memory_per_gpu(mtp.s, mtp.p).activations.value() - engine::memory_per_gpu(plain.s, plain.p).activations.value() ==
        Approx(layer + 8.0 * 128 * 256 + 4.0 * 128 * 512));
  // The composed step, tensor parallelism and wafers refuse it, naming the key.
  CHECK(mtp.p.event_engine_only() == "model.mtp_layers");
  CHECK_THROWS_WITH(tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", moe + ", mtp_layers: 1", "{tp: 2}", 2),
                    Catch::Contains("model.mtp_layers: multi-token prediction with tensor parallelism"));
}

TEST_CASE("engine::simulate step programs: a plain pipeline all-reduces the embedding copy's gradients between first and last stage",
          "[engine]") {
  // 3 GPUs, PP 3, tied embeddings (or an MTP module): the last stage holds a copy of the word
  // embedding (v h parameters), and after the backward its gradients are all-reduced with
  // the first stage's, E = 2 v h bytes in bf16 over 2 GPUs: 2 ring steps of E/2, before the
  // first stage's optimizer, which ends the step (1F1B's first stage finishes last). Compute
  // 1 ms a kernel; the middle stage takes no part; an untied model without MTP has none.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 3}";
  const Tiny tied = tiny_on(cluster, "layers: 3, heads: 4, kv_heads: 4, tied_embeddings: true", "{pp: 3}", 3);
  const Tiny plain = tiny_on(cluster, "layers: 3, heads: 4, kv_heads: 4", "{pp: 3}", 3);
  const double E = 2.0 * 512 * 256;
  SimulateOptions o = timed(1e-3);
  o.flow = false;
  const auto prog = step_program(*tied.s.model, tied.p);
  auto syncs = [&](std::uint32_t r) {
    std::vector<const ProgramOp*> out;
    for (const auto& op : prog.ops_of(r)) {
      if (op.name.find("embedding all-reduce") != std::string::npos) out.push_back(&op);
    }
    return out;
  };
  for (std::uint32_t r : {0u, 2u}) {
    INFO("rank " << r);
    const auto x = syncs(r);
    REQUIRE(x.size() == 1);
    CHECK(x[0]->op == collectives::Op::kAllReduce);
    CHECK(x[0]->bytes.value() == E);
    CHECK(prog.groups[prog.group_of(r, *x[0])] == std::vector<std::uint32_t>{0, 2});
  }
  CHECK(syncs(1).empty());
  const auto with = simulate(prog, sw(3), o), without = simulate(step_program(*plain.s.model, plain.p), sw(3), o);
  CHECK(with.makespan.value() - without.makespan.value() == Approx(2 * (2 * L + E / (2 * B))).epsilon(1e-6));
  // The composed step has it too, as exposed, on the scenario's NVSwitch node: two steps of E/2
  // each way, each one latency and E/2 at the link's achieved rate (within 1 %: after the sync
  // both stages' optimizers start together, and the last stage's, with the final norm, is a
  // few nanoseconds longer).
  {
    const auto net = collectives::NetworkModel::build("analytic", "network");
    const auto composed = [&](const Tiny& t) {
      return engine::simulate_step(t.s, t.p, topology::build_cluster(t.s.cluster), engine::step_options(net.get())).step_time.value();
    };
    const auto& link = tied.s.cluster.scale_up;
    const double step = link.latency.value() + E / 2 / (link.bandwidth.value() * link.efficiency);
    CHECK(composed(tied) - composed(plain) == Approx(2 * step).epsilon(0.01));
  }
  // The last stage holds its layer, the final norm and the copy (the tied head has no weights of its own).
  const auto pc = count_params(*tied.s.model);
  CHECK(stage_params(*tied.s.model, tied.p, 2).first == Approx(pc.dense_layer + 256 + 512.0 * 256));
  const Tiny mtp = tiny_on(cluster, "layers: 3, heads: 4, kv_heads: 4, mtp_layers: 1", "{pp: 3}", 3);
  const auto mtp_prog = step_program(*mtp.s.model, mtp.p);
  std::size_t mtp_syncs = 0;
  for (std::uint32_t r = 0; r < 3; ++r) {
    for (const auto& op : mtp_prog.ops_of(r)) mtp_syncs += op.name.find("embedding all-reduce") != std::string::npos;
  }
  CHECK(mtp_syncs == 2);
  const auto plain_prog = step_program(*plain.s.model, plain.p);
  for (std::uint32_t r = 0; r < 3; ++r) {
    for (const auto& op : plain_prog.ops_of(r)) CHECK(op.name.find("embedding all-reduce") == std::string::npos);
  }
}

TEST_CASE("engine::simulate step programs: pipeline sends block the next kernel unless p2p overlaps (Megatron's interleaved)",
          "[engine]") {
  // 2 stages, 4 micro-batches, every kernel 1 ms; a send takes 2L + S/B (a few us). 1F1B
  // batches its p2p and waits (Megatron turns the overlap off outside the interleaved
  // schedule): every kernel after a send starts once the send is done. Interleaved overlaps
  // them by default: some kernel after a send starts while it is still on the wire.
  auto sends_block = [](const Tiny& t) {
    const Program prog = step_program(*t.s.model, t.p);
    SimulateOptions o = timed(1e-3);
    o.flow = false;
    const auto r = simulate(prog, sw(2), o);
    const auto& ops = prog.ops_of(0);
    int sends = 0;
    bool blocked = true;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].kind != ProgramOp::Kind::kSend) continue;
      ++sends;
      for (std::size_t j = i + 1; j < ops.size(); ++j) {
        if (ops[j].kind != ProgramOp::Kind::kCompute) continue;
        blocked = blocked && r.ops[0][j].start.value() >= r.ops[0][i].end.value() - 1e-12;
        break;
      }
    }
    REQUIRE(sends > 0);
    return blocked;
  };
  const std::string model = "layers: 4, heads: 4, kv_heads: 4";
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}";
  const Tiny blocking = tiny_on(cluster, model, "{pp: 2}", 4);
  const Tiny overlapping = tiny_on(cluster, model, "{pp: 2, vpp: 2, schedule: interleaved}", 4);
  CHECK_FALSE(blocking.p.overlap_p2p_comm);
  CHECK(overlapping.p.overlap_p2p_comm);
  CHECK(sends_block(blocking));
  CHECK_FALSE(sends_block(overlapping));
  const Tiny forced = tiny_on(cluster, model, "{pp: 2, vpp: 2, schedule: interleaved, overlap_p2p_comm: false}", 4);
  CHECK(sends_block(forced));
  CHECK_THROWS_WITH(tiny_on(cluster, model, "{pp: 2, overlap_p2p_comm: true}", 4),
                    Catch::Contains("parallel.overlap_p2p_comm: Megatron-LM overlaps pipeline sends only under the interleaved schedule"));
}

TEST_CASE("engine::simulate step programs: context parallelism's ring hides behind attention when attention is longer",
          "[engine]") {
  // CP 2 on 2 GPUs, alpha-beta; every kernel 1 ms but fused attention, which takes `a` per
  // piece (two pieces, one per K/V block). The one ring step (the peer's K/V block, K bytes
  // each way: 2L + K/B; backward 2K) starts with the first piece and the second piece waits
  // for it: exposed max(0, ring - a) per attention (forward, backward at 2a per piece). The
  // dense gradients are all-reduced over the 2 CP ranks; all buckets hide but layer 0's
  // (with the embedding): 2 steps of G/2.
  const Tiny t = tiny(2, "{cp: 2}");
  const auto pc = count_params(*t.s.model);
  const double K = 2.0 * 2.0 * 64 * 4 * 64;  // K and V, 2 bytes, 64 tokens per GPU, 4 kv heads of 64
  const double G = 2.0 * (pc.dense_layer + pc.embedding);
  const double fwd_ring = 2 * L + K / B, bwd_ring = 2 * L + 2 * K / B;
  for (double a : {0.0, 1e-3}) {
    INFO("attention piece " << a << " s");
    SimulateOptions o;
    o.flow = false;
    o.compute_time = [a](const ProgramOp& op, std::uint32_t) {
      return Seconds::of(op.kernel.kind == KernelKind::kAttention ? a : 1e-3);
    };
    const auto r = simulate(step_program(*t.s.model, t.p), sw(2), o);
    const double exposed = 2 * (std::max(0.0, fwd_ring - a) + std::max(0.0, bwd_ring - 2 * a));
    CHECK(r.makespan.value() == Approx(r.compute[0].value() + exposed + 2 * (2 * L + G / (2 * B))).epsilon(1e-9));
  }
}

TEST_CASE("engine::simulate pipeline programs: zero-bubble's split weight passes, as pipeline.hpp orders them", "[engine]") {
  // pp 2, 2 micro-batches, F = B = W = 1 ms, free sends. pipeline.hpp's order: stage 0 runs
  // F0 F1 B0 W0 B1 W1, stage 1 F0 B0 W0 F1 B1 W1. Stage 1: F0 1-2, B0 2-3, W0 3-4, F1 4-5,
  // B1 5-6, W1 6-7; stage 0: F0 0-1, F1 1-2, B0 3-4 (after stage 1's), W0 4-5, B1 6-7, W1 7-8:
  // 8 ms, against 1F1B's (m+p-1)(F+B+W) = 9 (ZB-H1 as published would reach
  // m(F+B+W) + (p-1)(F+B-W) = 7: this order does not yet).
  const auto zb = pipeline_program(PipeSchedule::kZeroBubble, 2, 1, 2, 1, first_gpus(2),
                                   {Seconds::of(1e-3), Seconds::of(1e-3), Seconds::of(1e-3), Bytes::of(0), Bytes::of(0)});
  CHECK(simulate(zb, instant(2), model(true)).makespan.value() == Approx(8e-3).epsilon(1e-9));
}

TEST_CASE("engine::simulate step programs: zero-bubble moves the weight gradients, it does not add or drop any", "[engine]") {
  // The same kernels run under 1F1B and zero-bubble (each rank's compute time is equal); the
  // split lets stage 0's backward start earlier, so the step is no longer.
  const Tiny a = tiny(2, "{pp: 2, schedule: 1f1b}", 4), z = tiny(2, "{pp: 2, schedule: zero-bubble}", 4);
  const auto ra = simulate(step_program(*a.s.model, a.p), sw(2), timed(1e-4));
  const auto rz = simulate(step_program(*z.s.model, z.p), sw(2), timed(1e-4));
  for (std::size_t r = 0; r < 2; ++r) CHECK(rz.compute[r].value() == Approx(ra.compute[r].value()).epsilon(1e-12));
  CHECK(rz.makespan.value() <= ra.makespan.value());
}

TEST_CASE("engine::simulate step programs of bundled scenarios come within 0.5 % of the composed step", "[engine]") {
  // A cross-check while both exist (the composed step is what `run` reports today): the same
  // kernels, collectives (algorithms as the tuner picks them) and schedules, scheduled as
  // events instead of composed. On one NVSwitch node (TP 8) they agree; on 32 GPUs over a Clos
  // (DP 32, ZeRO-1) the buckets differ slightly (each waits for its own layer here, for a
  // fraction of the last backward there; the embedding and head ride with their layers).
  for (const auto& [file, set] : {std::pair{"tiny-8gpu", "training.global_batch=8"},
                                  std::pair{"llama3-8b-32xh100", "training.global_batch=32"}}) {
    INFO(file);
    const Scenario s = load_scenario(test::source_path(std::string("data/scenarios/") + file + ".yaml"), {set}, test::presets());
    const Plan p = make_plan(s);
    const auto t = topology::build_cluster(s.cluster);
    const hardware::GpuModel gpu(s.cluster.gpu, {.precision = hardware::gemm_precision(p.fp8(), p.fp8_blockwise)});
    SimulateOptions o;
    o.flow = false;
    o.compute_time = [&gpu](const ProgramOp& op, std::uint32_t) { return gpu.time(op.kernel); };
    const auto events = simulate(step_program(*s.model, p), t, o);
    const auto net = collectives::NetworkModel::build("analytic", "network");
    const auto composed = engine::simulate_step(s, p, t, engine::step_options(net.get()));
    CHECK(events.makespan.value() == Approx(composed.step_time.value()).epsilon(0.005));
  }
}

TEST_CASE("engine::simulate step programs: interleaved chunks may be empty as Llama 3 405B ran them (stage_layers)",
          "[engine]") {
  // Llama 3 8B's 32 layers on pp 2, vpp 2 as [0, 16, 16, 0]: stage 0's first chunk holds only
  // the embedding and stage 1's last only the head (Llama 3 405B: 126 layers in 128 chunks).
  // Every layer still runs once per micro-batch (the model FLOPs of the even split [8, 8, 8,
  // 8]), stage 0 holds the embedding and its 16 layers, and the event engine agrees with the
  // composed step.
  auto load = [](const std::string& layers) {
    return load_scenario(test::source_path("data/scenarios/tiny-8gpu.yaml"),
                         {"parallel.tp=2", "parallel.pp=2", "parallel.dp=2", "parallel.vpp=2", "parallel.schedule=interleaved",
                          "training.global_batch=4", "parallel.stage_layers=" + layers},
                         test::presets());
  };
  const Scenario empty = load("[0, 16, 16, 0]"), even = load("[8, 8, 8, 8]");
  const Plan pe = make_plan(empty), pv = make_plan(even);
  const auto t = topology::build_cluster(empty.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  const auto composed = engine::simulate_step(empty, pe, t, engine::step_options(net.get()));
  const auto reference = engine::simulate_step(even, pv, t, engine::step_options(net.get()));
  CHECK(composed.model_flops_per_gpu.value() * composed.step_time.value() ==
        Approx(reference.model_flops_per_gpu.value() * reference.step_time.value()).epsilon(1e-12));
  const auto pc = parallelism::count_params(*empty.model);
  CHECK(parallelism::stage_params(*empty.model, pe, 0).first == Approx((pc.embedding + 16 * pc.dense_layer) / 2).epsilon(1e-12));
  CHECK(parallelism::stage_params(*empty.model, pe, 1).first ==
        Approx((pc.lm_head + static_cast<double>(empty.model->hidden) + 16 * pc.dense_layer) / 2).epsilon(1e-12));
  const hardware::GpuModel gpu(empty.cluster.gpu, {.precision = hardware::gemm_precision(pe.fp8(), pe.fp8_blockwise)});
  SimulateOptions o;
  o.flow = false;
  o.compute_time = [&gpu](const ProgramOp& op, std::uint32_t) { return gpu.time(op.kernel); };
  const auto events = simulate(step_program(*empty.model, pe), t, o);
  CHECK(events.makespan.value() == Approx(composed.step_time.value()).epsilon(0.005));
  CHECK_THROWS_WITH(make_plan(load("[0, 16, 0, 16]")), Catch::Matchers::Contains("parallel.stage_layers: stage 0 holds no layer"));
}

TEST_CASE("engine::simulate step programs: ZeRO-2 and 3 with pipelines reduce-scatter every micro-batch, or once a step as torchtitan does",
          "[engine]") {
  // wallsim's default (DeepSpeed ZeRO's; Llama 3 405B's FSDP/ZeRO-2 with PP 16 as the README
  // takes it): each micro-batch's backward reduce-scatters its layers' gradients into the shard, so
  // 3 micro-batches on pp 2 (one layer per stage) give 3 scatters per rank, and ZeRO-3 gathers
  // the layer before each forward and each backward, 6 per rank. Gradients take 1/dp of
  // ZeRO-1's memory.
  const Tiny z1 = tiny(4, "{pp: 2, dp: 2, zero: 1}", 6), z2 = tiny(4, "{pp: 2, dp: 2, zero: 2}", 6),
             z3 = tiny(4, "{pp: 2, dp: 2, zero: 3}", 6);
  auto count = [](const Tiny& t, const std::string& prefix) {
    std::vector<int> n;
    const Program prog = step_program(*t.s.model, t.p);
    for (std::uint32_t r = 0; r < prog.ranks.size(); ++r) {
      const auto& ops = prog.ops_of(r);
      n.push_back(static_cast<int>(std::count_if(ops.begin(), ops.end(), [&](const ProgramOp& op) {
        return op.kind == ProgramOp::Kind::kCollective && op.name.rfind(prefix, 0) == 0;
      })));
    }
    return n;
  };
  CHECK(count(z2, "ZeRO reduce-scatter") == std::vector<int>{3, 3, 3, 3});
  CHECK(count(z3, "ZeRO reduce-scatter") == std::vector<int>{3, 3, 3, 3});
  CHECK(count(z3, "ZeRO-3 all-gather") == std::vector<int>{6, 6, 6, 6});
  // torchtitan's FSDP with pipelines (PyTorch pipelining's REDUCE_GRAD; torchtitan's
  // reshard_after_forward "default" = not pp): the weights are gathered once per step and kept,
  // the gradients accumulate whole and are reduce-scattered once, after each layer's last
  // backward. Memory: the whole weights beside the shard, whole gradients (ZeRO-1's).
  const Tiny tt = tiny(4, "{pp: 2, dp: 2, zero: 3, reshard_after_forward: false, grad_reduce: step}", 6);
  CHECK(count(tt, "ZeRO-3 all-gather") == std::vector<int>{1, 1, 1, 1});
  CHECK(count(tt, "ZeRO reduce-scatter") == std::vector<int>{0, 0, 0, 0});
  CHECK(count(tt, "DP reduce-scatter") == std::vector<int>{1, 1, 1, 1});
  const auto m1 = engine::memory_per_gpu(z1.s, z1.p), m3 = engine::memory_per_gpu(z3.s, z3.p),
             mt = engine::memory_per_gpu(tt.s, tt.p);
  CHECK(mt.gradients.value() == Approx(m1.gradients.value()).epsilon(1e-12));
  CHECK(mt.weights.value() == Approx(m3.weights.value() + m1.weights.value()).epsilon(1e-12));
  CHECK(simulate(step_program(*tt.s.model, tt.p), sw(4), timed(1e-4)).makespan.value() > 0.0);
  // Without pipelines, keeping the weights saves the backward's gather: one per micro-batch.
  const Tiny keep = tiny(4, "{dp: 4, zero: 3, reshard_after_forward: false}", 8);
  CHECK(count(keep, "ZeRO-3 all-gather") == std::vector<int>{4, 4, 4, 4});  // 2 micro-batches x 2 layers
  CHECK_THROWS_WITH(tiny(4, "{dp: 4, zero: 2, reshard_after_forward: false}", 8),
                    Catch::Contains("parallel.reshard_after_forward: applies to ZeRO-3"));
  CHECK_THROWS_WITH(tiny(4, "{dp: 4, zero: 1, grad_reduce: step}", 8), Catch::Contains("parallel.grad_reduce: applies to ZeRO-2 and 3"));
  CHECK(engine::memory_per_gpu(z2.s, z2.p).gradients.value() ==
        Approx(engine::memory_per_gpu(z1.s, z1.p).gradients.value() / 2).epsilon(1e-12));
  // The composed step (what `run` reports) scatters every micro-batch too: it agrees with the
  // event engine, as on the bundled scenarios.
  const auto t = topology::build_cluster(z2.s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  const hardware::GpuModel gpu(z2.s.cluster.gpu);
  SimulateOptions o;
  o.flow = false;
  o.compute_time = [&gpu](const ProgramOp& op, std::uint32_t) { return gpu.time(op.kernel); };
  for (const Tiny* z : {&z2, &z3}) {
    const double composed = engine::simulate_step(z->s, z->p, t, engine::step_options(net.get())).step_time.value();
    CHECK(simulate(step_program(*z->s.model, z->p), t, o).makespan.value() == Approx(composed).epsilon(0.05));
  }
}

TEST_CASE("engine::simulate background traffic (a checkpoint write) shares the links as max-min says", "[engine]") {
  // A send of S from GPU 0 to 1 while a write of 2S leaves GPU 0 for GPU 1's side (the same
  // link 0 -> switch): both at B/2 until the send's S is done at 2L + 2S/B; the write's
  // remaining S then runs alone. simulate_flows on the same three transfers agrees; the step
  // ends with its last op, not with the write; under analytic nothing contends.
  const double S = 1e9;
  Program p;
  p.ranks.push_back({0, {p2p(true, 1, S)}});
  p.ranks.push_back({1, {p2p(false, 0, 0.0)}});
  const auto t = sw(2);
  const std::vector<collectives::Flow> write{{t.route(0, 1), Bytes::of(2 * S), Seconds::of(0), 1.0}};
  auto o = model(true);
  o.background = write;
  const auto r = simulate(p, t, o);
  const auto replay = collectives::simulate_flows(t, {write[0], {t.route(0, 1), Bytes::of(S), Seconds::of(0), 1.0}});
  CHECK(r.makespan.value() == Approx(2 * L + 2 * S / B).epsilon(1e-12));
  CHECK(r.makespan.value() == Approx(replay[1].value()).epsilon(1e-12));
  CHECK(r.background_end.value() == Approx(replay[0].value()).epsilon(1e-12));
  CHECK(r.background_end.value() == Approx(2 * L + 3 * S / B).epsilon(1e-12));
  CHECK(simulate(p, t, model(true)).makespan.value() == Approx(2 * L + S / B).epsilon(1e-12));
  auto a = model(false);
  a.background = write;
  CHECK(simulate(p, t, a).makespan.value() == Approx(2 * L + S / B).epsilon(1e-12));
}

TEST_CASE("engine::simulate rank classes: one rank per class gives what simulating every rank gives", "[engine]") {
  // 2 nodes x 8 GPUs on a Clos (a spine between the nodes' leaves), every kernel 0.1 ms; each
  // parallel dimension alone and mixed, healthy, with a failed cable (GPU 9's NVSwitch cable: its
  // TP traffic leaves through its NIC) and with a slow GPU (GPU 5 at half speed). Simulating one
  // rank per class (classes.hpp) must give every rank's step time.
  auto fabric = [] {
    return topology::build_clos({.nodes = 2, .gpus_per_node = 8, .nodes_per_leaf = 1, .spines = 1,
                                 .scale_up = {units::gbyte_per_s(450), units::us(1), {}},
                                 .scale_out = {units::gbyte_per_s(50), units::us(2), {}}});
  };
  const std::string cluster = "{gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_out: {topology: clos, bandwidth: 50 GB/s}}";
  const std::string dense = "heads: 8, kv_heads: 8, layers: 4", moe = "heads: 8, kv_heads: 8, experts: 8, top_k: 2, moe_ffn: 512";
  const std::string moe16 = "heads: 8, kv_heads: 8, experts: 16, top_k: 2, moe_ffn: 512, router_groups: 2, router_group_topk: 1";
  struct Case {
    std::string model, parallel;
    int batch;
  };
  const std::vector<Case> cases{
      {dense, "{tp: 8, dp: 2, sp: true}", 2},
      {dense, "{tp: 2, pp: 2, dp: 4, sp: true}", 8},
      {dense, "{tp: 2, pp: 2, vpp: 2, dp: 4, schedule: interleaved}", 8},
      {dense, "{dp: 16, zero: 3}", 16},
      {dense, "{tp: 2, dp: 8, zero: 2, overlap_grad_reduce: true}", 8},
      {dense, "{cp: 2, tp: 2, dp: 4}", 4},
      {moe, "{dp: 16, ep: 8}", 16},
      {moe16, "{dp: 16, ep: 16, moe_token_dispatcher: deepep}", 16},
  };
  for (const auto& c : cases) {
    const Tiny t = tiny_on(cluster, c.model, c.parallel, c.batch);
    const Program prog = step_program(*t.s.model, t.p);
    for (int variant = 0; variant < 3; ++variant) {
      auto f = fabric();
      if (variant == 1) {
        for (topology::LinkId l = 0; l < f.num_links(); ++l) {
          if (f.node_name(f.link_source(l)) == "gpu9" && f.node_name(f.link_target(l)) == "nvswitch1") f.fail_link(l);
        }
      }
      for (bool flow : {false, true}) {
        INFO(c.parallel << (variant == 1 ? ", GPU 9's NVSwitch cable failed" : variant == 2 ? ", GPU 5 at half speed" : "")
                        << (flow ? ", flow" : ", analytic"));
        SimulateOptions o = timed(1e-4);
        o.flow = flow;
        o.speed.assign(prog.ranks.size(), 1.0);
        if (variant == 2) o.speed[5] = 0.5;
        const std::vector<double> speed = o.speed;
        o.compute_time = [speed](const ProgramOp&, std::uint32_t rank) { return Seconds::of(1e-4 / speed[rank]); };
        const auto every = simulate(prog, f, o);
        o.classes = true;
        const auto one = simulate(prog, f, o);
        CHECK(one.makespan.value() == Approx(every.makespan.value()).epsilon(1e-9));
        if (variant == 0) CHECK(one.classes.count() <= static_cast<std::size_t>(t.p.pp));
      }
    }
  }
}

TEST_CASE("engine::simulate rank classes: on a Clos with several spines one rank per class gives every rank's step",
          "[engine]") {
  // 4 nodes x 4 GPUs, a leaf per node, 2 or 3 spines (the test above has one): the transfers
  // between nodes take their spine by the fabric's ECMP, the copies of a group run their alike
  // transfers as one merged transfer over all their routes. Data parallel, TP with DP (four
  // DP groups across the nodes at once) and ZeRO-3: one rank per class must give what
  // simulating every rank gives.
  auto fabric = [](int spines) {
    return topology::build_clos({.nodes = 4, .gpus_per_node = 4, .nodes_per_leaf = 1, .spines = spines,
                                 .scale_up = {units::gbyte_per_s(450), units::us(1), {}},
                                 .scale_out = {units::gbyte_per_s(50), units::us(2), {}}});
  };
  const std::string cluster = "{gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_out: {topology: clos, bandwidth: 50 GB/s}}";
  for (const std::string parallel : {"{dp: 16}", "{tp: 4, dp: 4}", "{dp: 16, zero: 3}"}) {
    const Tiny t = tiny_on(cluster, "heads: 4, kv_heads: 4, layers: 2", parallel, 16);
    const Program prog = step_program(*t.s.model, t.p);
    for (int spines : {2, 3}) {
      INFO(parallel << ", " << spines << " spines");
      const auto f = fabric(spines);
      SimulateOptions o = timed(1e-5);
      const auto every = simulate(prog, f, o);
      o.classes = true;
      const auto one = simulate(prog, f, o);
      CHECK(one.makespan.value() == Approx(every.makespan.value()).epsilon(1e-9));
    }
  }
}

TEST_CASE("engine::simulate rank classes: on an ECMP fat-tree the links the copies share split the classes",
          "[engine]") {
  // GPUs on fat-trees whose routes between edge switches ECMP hashes onto uplinks, each
  // kernel 10 us, under `flow`. Every route costs what its level costs, so the classes by
  // costs alone are one or two; but the rings' and ZeRO-3's transfers of the copies of a group
  // land unevenly on the uplinks: on 16 GPUs with ZeRO-3 one rank per such class gave 0.9 %
  // more than every rank (6.5 % without merging the collided transfers apart), on 32 GPUs 6.6 %.
  // Taking in the links the connections share (classify's Contention) splits the classes where
  // the hashing acts, and one rank per class gives every rank's step.
  struct Case {
    int k, levels, nodes, gpus_per_node;
    std::string parallel;
  };
  const std::vector<Case> cases{
      {4, 3, 16, 1, "{dp: 16}"},        {4, 3, 16, 1, "{dp: 16, zero: 3}"}, {4, 3, 8, 2, "{dp: 16}"},
      {8, 3, 16, 2, "{dp: 32, zero: 3}"}, {8, 2, 16, 2, "{tp: 2, dp: 16}"},
  };
  auto scenario = [](const Case& c) {
    const std::string scale_up = c.gpus_per_node > 1 ? ", scale_up: {bandwidth: 450 GB/s, latency: 1 us}" : "";
    const std::string cluster = "{gpu: h100-sxm, nodes: " + std::to_string(c.nodes) + ", gpus_per_node: " + std::to_string(c.gpus_per_node) +
                                scale_up + ", scale_out: {topology: fat-tree, k: " + std::to_string(c.k) + ", levels: " +
                                std::to_string(c.levels) + ", bandwidth: 50 GB/s, latency: 2 us}}";
    return tiny_on(cluster, "heads: 4, kv_heads: 4", c.parallel, 2 * c.nodes * c.gpus_per_node);
  };
  // The step of every rank and of one rank per class (with `max_ops` for the links), and the
  // classes by costs alone.
  struct Both {
    engine::ProgramResult every, one;
    std::size_t by_costs;
  };
  auto both = [](const Tiny& t, const topology::Topology& f, const std::vector<double>& reserved = {},
                 std::size_t max_ops = SimulateOptions{}.classes_max_ops) {
    const Program prog = step_program(*t.s.model, t.p);
    SimulateOptions o = timed(1e-5);
    o.reserved_Bps = reserved;
    o.classes_max_ops = max_ops;
    Both x{simulate(prog, f, o), {}, engine::classify(prog, f).count()};
    o.classes = true;
    x.one = simulate(prog, f, o);
    return x;
  };
  for (const auto& c : cases) {
    INFO(c.parallel << " on " << c.nodes << " x " << c.gpus_per_node << " GPUs, fat-tree k " << c.k << ", " << c.levels << " levels");
    const Tiny t = scenario(c);
    const auto x = both(t, topology::build_cluster(t.s.cluster));
    CHECK(x.one.classes.exact);
    CHECK(x.one.makespan.value() == Approx(x.every.makespan.value()).epsilon(1e-9));
    CHECK(x.by_costs < x.one.classes.count());  // the links split the classes by costs
  }
  SECTION("where the fabric is symmetric the links keep classes together") {
    // A 4 x 4 wrapped torus of 16 GPUs, dimension-order routes: its symmetry maps ranks onto
    // ranks with their links, so the classes stay fewer than the ranks, and one rank per class
    // still gives every rank's step.
    for (const std::string parallel : {"{pp: 2, dp: 8}", "{tp: 2, dp: 8}"}) {
      INFO(parallel << " on a 4 x 4 torus");
      const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 16, gpus_per_node: 1, scale_out: {topology: torus, dims: 4x4, bandwidth: 50 GB/s}}",
                             "heads: 4, kv_heads: 4", parallel, 32);
      const auto x = both(t, topology::build_cluster(t.s.cluster));
      CHECK(x.one.classes.exact);
      CHECK(x.one.classes.count() < 16);
      CHECK(x.one.makespan.value() == Approx(x.every.makespan.value()).epsilon(1e-9));
    }
  }
  SECTION("a link with bandwidth reserved on it is told apart, even a GPU's own") {
    // 16 GPUs on a Clos of one spine, 4 to a leaf, PP 2 and DP 8: 90 % of GPU 0's uplink taken
    // by outside traffic. Only GPU 0 sends on that link, so its route costs do not show it; the
    // reserve's colour splits GPU 0's class (and its peers'), and one rank per class gives every
    // rank's step (0.3 % off when the link was left out).
    const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 16, gpus_per_node: 1, scale_out: {topology: clos, nodes_per_leaf: 4, spines: 1, bandwidth: 50 GB/s}}",
                           "heads: 4, kv_heads: 4", "{pp: 2, dp: 8}", 32);
    const auto f = topology::build_cluster(t.s.cluster);
    std::vector<double> reserved(f.num_links(), 0.0);
    const auto uplink = f.route(0, 15).front();
    reserved[uplink] = 0.9 * f.link(uplink).bandwidth.value();
    const auto x = both(t, f, reserved);
    CHECK(x.one.classes.exact);
    CHECK(x.one.makespan.value() == Approx(x.every.makespan.value()).epsilon(1e-9));
  }
  SECTION("past the budget the classes by costs stand, and the collided transfers are merged apart") {
    // 16 GPUs, ZeRO-3: with no ops to spare (classes_max_ops 0, and 4x the classes by costs
    // too few for the split) the engine keeps the classes by costs and says they are not
    // exact; merging apart the transfers ECMP collided keeps it within 2 % of every rank (0.9 %;
    // 6.5 % merged together).
    const Tiny t = scenario(cases[1]);
    const auto x = both(t, topology::build_cluster(t.s.cluster), {}, 0);
    CHECK_FALSE(x.one.classes.exact);
    CHECK(x.one.classes.count() == x.by_costs);
    CHECK(x.one.makespan.value() > x.every.makespan.value());
    CHECK(x.one.makespan.value() < 1.02 * x.every.makespan.value());
  }
}

TEST_CASE("engine::simulate step programs: DualPipe holds two stages and reduces their gradients over both copies",
          "[engine]") {
  // 4 layers on pp 4 (one each), DualPipe, 8 micro-batches, ZeRO-0. Rank s holds stage s and
  // its mirror 3 - s: ranks 0 and 3 carry layers 0 and 3 with the embedding and the head, ranks
  // 1 and 2 layers 1 and 2. Each layer's gradient bucket is all-reduced over the two ranks that
  // hold it ({0, 3} or {1, 2}); the composed step refuses the schedule, naming it.
  const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 4}", "heads: 4, kv_heads: 4, layers: 4", "{pp: 4, schedule: dualpipe}", 8);
  const auto pc = count_params(*t.s.model);
  const auto mem = engine::memory_per_gpu(t.s, t.p);
  CHECK(mem.weights.value() ==
        Approx(2.0 * (2 * pc.dense_layer + pc.embedding + pc.lm_head + t.s.model->hidden)).epsilon(1e-12));
  CHECK(mem.stages[1].weights.value() == Approx(2.0 * 2 * pc.dense_layer).epsilon(1e-12));
  const Program prog = step_program(*t.s.model, t.p);
  for (std::uint32_t r = 0; r < 4; ++r) {
    INFO("rank " << r);
    int buckets = 0;
    for (const auto& op : prog.ops_of(r)) {
      if (op.kind != ProgramOp::Kind::kCollective || op.name.rfind("DP all-reduce", 0) != 0) continue;
      ++buckets;
      auto g = prog.groups[prog.group_of(r, op)];
      std::sort(g.begin(), g.end());
      CHECK(g == std::vector<std::uint32_t>{std::min(r, 3 - r), std::max(r, 3 - r)});
    }
    CHECK(buckets == 2);
  }
  const auto r = simulate(prog, sw(4), timed(1e-4));
  CHECK(r.makespan.value() > 0.0);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  CHECK_THROWS_WITH(engine::simulate_step(t.s, t.p, topology::build_cluster(t.s.cluster), engine::step_options(net.get())),
                    Catch::Contains("parallel.schedule"));
}

TEST_CASE("engine memory: pipeline receive buffers, one for the gradient in hand, two posted ahead when p2p overlaps",
          "[engine]") {
  // A received tensor is 2·b·s·h/(cp·tp) bytes (128 tokens of 256 here: 64 KiB). Beyond the
  // activations received ones become, 1F1B holds the gradient for the backward in hand; the
  // interleaved schedule (overlapped p2p) an activation and a gradient posted ahead; DualPipe
  // both directions' pairs. Without a pipeline there are none.
  const std::string model = "layers: 4, heads: 4, kv_heads: 4";
  auto buffers = [&](int gpus, const std::string& parallel) {
    const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: " + std::to_string(gpus) + "}", model, parallel, 8);
    return engine::memory_per_gpu(t.s, t.p).buffers.value();
  };
  const double message = 2.0 * 128 * 256, none = buffers(1, "{}");
  CHECK(buffers(2, "{pp: 2}") - none == Approx(message).epsilon(1e-12));
  CHECK(buffers(2, "{pp: 2, vpp: 2, schedule: interleaved}") - none == Approx(2 * message).epsilon(1e-12));
  CHECK(buffers(2, "{pp: 2, schedule: dualpipe}") - none == Approx(4 * message).epsilon(1e-12));
}

TEST_CASE("engine::simulate step programs: ZB-V's rank 0 holds both ends, so a tied embedding is held once", "[engine]") {
  // 4 layers on pp 2, ZB-V: rank 0 runs virtual stages 0 and 3 (layers 0 and 3, the
  // embedding, the final norm and the head), rank 1 stages 1 and 2 (layers 1 and 2). With tied
  // embeddings the head is the embedding: no copy and no embedding all-reduce, unlike a plain
  // pipeline's; the fp32 logits are rank 0's. The composed step refuses the schedule.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}";
  const std::string model = "layers: 4, heads: 4, kv_heads: 4, tied_embeddings: true";
  const Tiny t = tiny_on(cluster, model, "{pp: 2, schedule: zero-bubble-v}", 4);
  CHECK(t.p.vpp == 2);
  CHECK(t.p.overlap_p2p_comm);
  const auto pc = count_params(*t.s.model);
  CHECK(parallelism::rank_params(*t.s.model, t.p, 0).first == Approx(2 * pc.dense_layer + pc.embedding + 256).epsilon(1e-12));
  CHECK(parallelism::rank_params(*t.s.model, t.p, 1).first == Approx(2 * pc.dense_layer).epsilon(1e-12));
  const Program prog = step_program(*t.s.model, t.p);
  for (std::uint32_t r = 0; r < 2; ++r) {
    for (const auto& op : prog.ops_of(r)) CHECK(op.name.find("embedding all-reduce") == std::string::npos);
  }
  const auto mem = engine::memory_per_gpu(t.s, t.p);
  const double logits = 4.0 * 128 * 512;
  const auto act = [&](int s) { return mem.stages[static_cast<std::size_t>(s)].activations.value(); };
  CHECK(act(0) - act(1) == Approx(logits).epsilon(1e-9));  // both hold 2pp = 4 chunks of one layer at peak
  CHECK(simulate(prog, sw(2), timed(1e-4)).makespan.value() > 0.0);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  CHECK_THROWS_WITH(engine::simulate_step(t.s, t.p, topology::build_cluster(t.s.cluster), engine::step_options(net.get())),
                    Catch::Contains("parallel.schedule"));
  // Every byte of a rank's parameters is in its gradient buckets, whichever of rank 0's two
  // chunks (its ends) is empty: the embedding or the head then rides with its other layer.
  for (const char* layers : {"[1, 2, 1, 0]", "[0, 2, 1, 1]", "[1, 1, 1, 1]"}) {
    INFO(layers);
    const Tiny z = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 4}", "layers: 4, heads: 4, kv_heads: 4",
                           std::string("{pp: 2, dp: 2, zero: 1, schedule: zero-bubble-v, stage_layers: ") + layers + "}", 4);
    const Program zp = step_program(*z.s.model, z.p);
    double reduced = 0.0;
    for (const auto& op : zp.ops_of(0)) {
      if (op.kind == ProgramOp::Kind::kCollective && op.name.rfind("DP reduce-scatter", 0) == 0) reduced += op.bytes.value();
    }
    CHECK(reduced == Approx(z.p.grad_bytes * parallelism::rank_params(*z.s.model, z.p, 0).first).epsilon(1e-12));
  }
  CHECK_THROWS_WITH(tiny_on(cluster, model, "{pp: 2, vpp: 3, schedule: zero-bubble-v}", 4),
                    Catch::Contains("parallel.vpp: zero-bubble-v runs two chunks a rank (a V), so vpp is 2, not 3"));
  CHECK_THROWS_WITH(tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 1}", model, "{schedule: zero-bubble-v}", 4),
                    Catch::Contains("parallel.pp: zero-bubble-v needs pp of at least 2"));
}

TEST_CASE("engine::simulate step programs: FSDP's Float8 all-gather moves the linears' weights in one byte", "[engine]") {
  // 2 layers (h 256, ffn 1024, 4 heads of 64: linears 4h^2 + 3h·ffn, norms 2h), DP 2, ZeRO-3,
  // FP8. Each layer's gather moves its linears at 1 byte and the rest (norms, and the
  // embedding or the final norm and head riding with it) at 2, against 2 for all; after the
  // optimizer one all-reduce moves every linear's amax in fp32: 7 a layer, 56 bytes. Memory:
  // the two layers in flight (gathered, then freed) hold their linears at 1 byte; kept
  // gathered (reshard_after_forward off) the rank's linears drop from the 3 bytes of bf16 and
  // the FP8 copy to 1.
  auto make = [](const std::string& precision, const std::string& parallel, const std::string& model = "") {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 2}\nmodel: {layers: 2, hidden: 256, ffn: 1024, "
                             "vocab: 512, heads: 4, kv_heads: 4" + model + "}\ntraining: {seq_len: 128, global_batch: 2, "
                             "micro_batch: 1, precision: " + precision + "}\nparallel: " + parallel + "\n";
    Tiny t{parse_scenario(text, "t.yaml", {}, test::presets()), {}, 0.0};
    t.p = make_plan(t.s);
    return t;
  };
  const Tiny bf = make("fp8", "{dp: 2, zero: 3}"), f8 = make("fp8", "{dp: 2, zero: 3, fsdp_float8_all_gather: true}");
  const auto pc = count_params(*f8.s.model);
  const double linears = 4.0 * 256 * 256 + 3.0 * 256 * 1024, norms = 2.0 * 256;
  REQUIRE(pc.dense_layer == linears + norms);
  auto gathers = [](const Tiny& t, std::uint32_t r) {
    std::map<std::string, double> out;
    const Program prog = step_program(*t.s.model, t.p);
    for (const auto& op : prog.ops_of(r)) {
      if (op.kind == ProgramOp::Kind::kCollective && op.op == collectives::Op::kAllGather) out[op.name] = op.bytes.value();
    }
    return out;
  };
  const auto g_bf = gathers(bf, 0), g_f8 = gathers(f8, 0);
  REQUIRE(g_f8.size() == 4);  // each layer before its forward and its backward
  for (const auto& [name, bytes] : g_f8) {
    INFO(name);
    const bool first = name.find("layer 0") != std::string::npos;
    const double rest = norms + (first ? pc.embedding : pc.lm_head + 256);
    CHECK(bytes == Approx(linears + 2 * rest).epsilon(1e-12));
    CHECK(g_bf.at(name) == Approx(2 * (linears + rest)).epsilon(1e-12));
  }
  const Program prog = step_program(*f8.s.model, f8.p);
  int amax = 0;
  for (const auto& op : prog.ops_of(1)) {
    if (op.name.find("amax") == std::string::npos) continue;
    ++amax;
    CHECK(op.op == collectives::Op::kAllReduce);
    CHECK(op.bytes.value() == 56.0);
    CHECK(prog.groups[prog.group_of(1, op)] == std::vector<std::uint32_t>{0, 1});
  }
  CHECK(amax == 1);
  const Program plain = step_program(*bf.s.model, bf.p);
  for (const auto& op : plain.ops_of(1)) CHECK(op.name.find("amax") == std::string::npos);
  CHECK(simulate(prog, sw(2), timed(1e-4)).makespan.value() > 0.0);
  const auto mem = [](const Tiny& t) { return engine::memory_per_gpu(t.s, t.p); };
  CHECK(mem(bf).buffers.value() - mem(f8).buffers.value() == Approx(2 * linears).epsilon(1e-9));
  const Tiny kept_bf = make("fp8", "{pp: 2, zero: 3, reshard_after_forward: false}");
  const Tiny kept_f8 = make("fp8", "{pp: 2, dp: 1, zero: 3, reshard_after_forward: false, fsdp_float8_all_gather: true}");
  CHECK(mem(kept_bf).stages[0].weights.value() - mem(kept_f8).stages[0].weights.value() == Approx(2 * linears).epsilon(1e-9));
  // The composed step refuses it; bad plans name the key.
  CHECK(f8.p.event_engine_only() == "parallel.fsdp_float8_all_gather");
  CHECK_THROWS_WITH(make("bf16", "{dp: 2, zero: 3, fsdp_float8_all_gather: true}"),
                    Catch::Contains("parallel.fsdp_float8_all_gather: gathers Float8 linears' weights: it needs training.precision fp8"));
  CHECK_THROWS_WITH(make("fp8", "{dp: 2, zero: 2, fsdp_float8_all_gather: true}"),
                    Catch::Contains("parallel.fsdp_float8_all_gather: applies to ZeRO-3"));
  CHECK_THROWS_WITH(make("fp8", "{dp: 2, ep: 2, zero: 3, fsdp_float8_all_gather: true}", ", experts: 2, top_k: 1, moe_ffn: 512"),
                    Catch::Contains("parallel.fsdp_float8_all_gather: is built for dense models"));
}

TEST_CASE("engine::simulate step programs: ZeRO-3 gathers a layer's weights prefetch_layers layers ahead", "[engine]") {
  // 4 layers, DP 2, ZeRO-3, every kernel 1 ms, gathers of microseconds. A gather waits for the
  // first kernel of the layer prefetch_layers before its own. One ahead (FSDP's implicit
  // prefetch), layer 2's waits for layer 1's first kernel, after all of layer 0's (10 here):
  // past 11 ms; two ahead, for layer 0's first: 1 ms and a gather. Memory holds 1 +
  // prefetch_layers layers.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}", model = "layers: 4, heads: 4, kv_heads: 4";
  auto gather_start = [&](const Tiny& t) {
    const Program prog = step_program(*t.s.model, t.p);
    const auto r = simulate(prog, sw(2), timed(1e-3));
    const auto& ops = prog.ops_of(0);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].name == "ZeRO-3 all-gather layer 2") return r.ops[0][i].start.value();
    }
    FAIL("no gather of layer 2");
    return 0.0;
  };
  const Tiny one = tiny_on(cluster, model, "{dp: 2, zero: 3}", 2), two = tiny_on(cluster, model, "{dp: 2, zero: 3, prefetch_layers: 2}", 2);
  CHECK(gather_start(one) > 11e-3);
  CHECK(gather_start(two) < 2e-3);
  const auto pc = count_params(*one.s.model);
  CHECK(engine::memory_per_gpu(two.s, two.p).buffers.value() - engine::memory_per_gpu(one.s, one.p).buffers.value() ==
        Approx(2.0 * pc.dense_layer).epsilon(1e-9));
  CHECK(two.p.event_engine_only() == "parallel.prefetch_layers");
  CHECK_THROWS_WITH(tiny_on(cluster, model, "{dp: 2, zero: 2, prefetch_layers: 2}", 2),
                    Catch::Contains("parallel.prefetch_layers: applies to ZeRO-3"));
}

TEST_CASE("engine::simulate step programs: hybrid sharding gathers and scatters in its shard group, then all-reduces "
          "across replicas",
          "[engine]") {
  // 8 GPUs, dp 8, ZeRO-3 in shard groups of 4 (FSDP2's HSDP, torchtitan's
  // data_parallel_shard_degree 4): weights, gradients and optimizer are sharded over 4 ranks,
  // not 8 (twice the bytes), every gather and reduce-scatter runs over {0..3} or {4..7}, and each
  // reduce-scatter's shard (1/4 of it) is all-reduced over the 2 ranks at the same place of
  // the two groups (FSDP2's foreach_reduce), before anything that waits on the gradients.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 8}";
  const Tiny full = tiny_on(cluster, "heads: 4, kv_heads: 4", "{dp: 8, zero: 3}", 8);
  const Tiny hsdp = tiny_on(cluster, "heads: 4, kv_heads: 4", "{dp: 8, zero: 3, dp_shard: 4}", 8);
  const auto mf = engine::memory_per_gpu(full.s, full.p), mh = engine::memory_per_gpu(hsdp.s, hsdp.p);
  CHECK(mh.weights.value() == Approx(2 * mf.weights.value()).epsilon(1e-12));
  CHECK(mh.gradients.value() == Approx(2 * mf.gradients.value()).epsilon(1e-12));
  CHECK(mh.optimizer.value() == Approx(2 * mf.optimizer.value()).epsilon(1e-12));
  const Program prog = step_program(*hsdp.s.model, hsdp.p);
  for (std::uint32_t r : {0u, 5u}) {
    INFO("rank " << r);
    const auto& ops = prog.ops_of(r);
    const std::uint32_t base = r < 4 ? 0 : 4;
    const std::vector<std::uint32_t> shard{base, base + 1, base + 2, base + 3}, replicas{r % 4, r % 4 + 4};
    int scatters = 0, gathers = 0;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& op = ops[i];
      if (op.kind != ProgramOp::Kind::kCollective) continue;
      const auto& g = prog.groups[prog.group_of(r, op)];
      if (op.op == collectives::Op::kAllGather) {
        ++gathers;
        CHECK(g == shard);
      } else if (op.op == collectives::Op::kReduceScatter) {
        ++scatters;
        CHECK(g == shard);
        REQUIRE(i + 1 < ops.size());
        const auto& ar = ops[i + 1];
        CHECK(ar.op == collectives::Op::kAllReduce);
        CHECK(prog.groups[prog.group_of(r, ar)] == replicas);
        CHECK(ar.bytes.value() == Approx(op.bytes.value() / 4).epsilon(1e-12));
        CHECK(ar.deps == std::vector<std::uint32_t>{static_cast<std::uint32_t>(i)});
      }
    }
    CHECK(scatters == 2);  // one per layer (one micro-batch)
    CHECK(gathers == 4);   // each layer before its forward and its backward
  }
  CHECK(simulate(prog, sw(8), timed(1e-4)).makespan.value() > 0.0);  // it runs: every member posts its collectives
  auto bad = [&](const std::string& parallel, const std::string& message) {
    INFO(parallel);
    CHECK_THROWS_WITH(tiny_on(cluster, "heads: 4, kv_heads: 4", parallel, 8), Catch::Contains(message));
  };
  bad("{dp: 8, zero: 3, dp_shard: 3}", "parallel.dp_shard: 3 does not divide dp 8");
  bad("{dp: 8, dp_shard: 4}", "parallel.dp_shard: hybrid sharding shards ZeRO's states");
  bad("{dp: 8, zero: 3, dp_shard: 1}", "parallel.dp_shard: 1 (with cp 1) shards nothing");
}

TEST_CASE("engine::simulate step programs: hybrid sharding under DualPipe shards over both copies in a shard group",
          "[engine]") {
  // 8 GPUs, pp 2 DualPipe, dp 4 in shard groups of 2, ZeRO-3 (rank = dp + 4 pp). Ranks 0 and 4
  // hold the same two stages, so a weight's copies are {0, 1, 2, 3} and {4, 5, 6, 7}; rank 0's
  // shard group is its shard group's ranks in both stages, {0, 1, 4, 5}, and each reduced
  // shard (a quarter) is all-reduced with the rank at the same place of the other shard group,
  // {0, 2}. States are sharded over 4 ranks.
  const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 8}", "heads: 4, kv_heads: 4",
                         "{pp: 2, dp: 4, zero: 3, dp_shard: 2, schedule: dualpipe}", 16);
  CHECK(t.p.weight_shards() == 4);
  const Program prog = step_program(*t.s.model, t.p);
  const auto& ops = prog.ops_of(0);
  int scatters = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (op.kind != ProgramOp::Kind::kCollective || op.op != collectives::Op::kReduceScatter) continue;
    ++scatters;
    auto g = prog.groups[prog.group_of(0, op)];
    std::sort(g.begin(), g.end());
    CHECK(g == std::vector<std::uint32_t>{0, 1, 4, 5});
    REQUIRE(i + 1 < ops.size());
    CHECK(prog.groups[prog.group_of(0, ops[i + 1])] == std::vector<std::uint32_t>{0, 2});
    CHECK(ops[i + 1].bytes.value() == Approx(op.bytes.value() / 4).epsilon(1e-12));
  }
  CHECK(scatters > 0);
  CHECK(simulate(prog, sw(8), timed(1e-4)).makespan.value() > 0.0);
  const auto [dense, expert] = parallelism::rank_params(*t.s.model, t.p, 0);
  CHECK(engine::memory_per_gpu(t.s, t.p).optimizer.value() == Approx(t.p.optimizer_bytes * dense / 4).epsilon(1e-12));
  CHECK(expert == 0.0);
}

TEST_CASE("engine::simulate step programs: hybrid sharding splits the expert-data-parallel group as the data-parallel one",
          "[engine]") {
  // 8 GPUs, dp 8, EP 2, ZeRO-3 in shard groups of 4 (2 replicas). Each expert weight is held by
  // the expert-data-parallel group of 4 ranks ({0, 2, 4, 6} for rank 0); hybrid sharding splits
  // it into 2 parts as Megatron-Core's distributed-optimizer instances do: expert states
  // sharded over {0, 2} (2 ranks, not 4: twice the bytes), gathered and reduce-scattered there,
  // each reduced shard (half of it) all-reduced over {0, 4}.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 8}";
  const std::string moe = "heads: 4, kv_heads: 4, experts: 2, top_k: 1, moe_ffn: 512";
  const Tiny full = tiny_on(cluster, moe, "{dp: 8, ep: 2, zero: 3}", 8);
  const Tiny hsdp = tiny_on(cluster, moe, "{dp: 8, ep: 2, zero: 3, dp_shard: 4}", 8);
  CHECK(hsdp.p.expert_weight_shards() == 2);
  CHECK(full.p.expert_weight_shards() == 4);
  const Program prog = step_program(*hsdp.s.model, hsdp.p);
  const auto& ops = prog.ops_of(0);
  int scatters = 0, gathers = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (op.kind != ProgramOp::Kind::kCollective || op.name.find("(experts)") == std::string::npos) continue;
    CHECK(prog.groups[prog.group_of(0, op)] == std::vector<std::uint32_t>{0, 2});
    gathers += op.op == collectives::Op::kAllGather;
    if (op.op != collectives::Op::kReduceScatter) continue;
    ++scatters;
    REQUIRE(i + 1 < ops.size());
    const auto& ar = ops[i + 1];
    CHECK(ar.name.find("(experts, across replicas)") != std::string::npos);
    CHECK(prog.groups[prog.group_of(0, ar)] == std::vector<std::uint32_t>{0, 4});
    CHECK(ar.bytes.value() == Approx(op.bytes.value() / 2).epsilon(1e-12));
  }
  CHECK(scatters == 2);  // one per MoE layer
  CHECK(gathers == 4);
  CHECK(simulate(prog, sw(8), timed(1e-4)).makespan.value() > 0.0);
  // Optimizer states: the dense ones over 4 ranks instead of 8, the experts' over 2 instead
  // of 4; a group that does not split is refused.
  const auto [dense, expert] = parallelism::rank_params(*hsdp.s.model, hsdp.p, 0);
  const double K = hsdp.p.optimizer_bytes;
  CHECK(engine::memory_per_gpu(hsdp.s, hsdp.p).optimizer.value() - engine::memory_per_gpu(full.s, full.p).optimizer.value() ==
        Approx(K * (dense / 4 - dense / 8) + K * (expert / 2 - expert / 4)).epsilon(1e-12));
  CHECK(expert > 0.0);
  CHECK_THROWS_WITH(tiny_on(cluster, moe, "{dp: 8, ep: 2, zero: 3, dp_shard: 2}", 8),
                    Catch::Contains("parallel.dp_shard: the expert-data-parallel group of 4 ranks would split into 4 parts of one rank"));
  CHECK_THROWS_WITH(tiny_on(cluster, "heads: 4, kv_heads: 4, experts: 8, top_k: 1, moe_ffn: 512", "{dp: 8, ep: 8, zero: 3, dp_shard: 4}", 8),
                    Catch::Contains("parallel.dp_shard: the expert-data-parallel group of 1 ranks does not split into dp / dp_shard = 2 replicas"));
}

TEST_CASE("engine::simulate step programs: under DualPipe a chunk's backward follows its forward, on every rank", "[engine]") {
  // The loss's backward of the i-th micro-batch to reach the loss on a rank starts after the
  // i-th loss forward there ends: an overlapped pair's backward (on the second compute stream)
  // waits for what preceded the pair, so it cannot run ahead of its own forward. And every
  // gradient a rank sends back for a chunk leaves after that chunk's activation arrived.
  const Tiny t = tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 4}", "heads: 4, kv_heads: 4, layers: 4",
                         "{pp: 4, schedule: dualpipe}", 8);
  const Program prog = step_program(*t.s.model, t.p);
  SimulateOptions o = timed(1e-4);
  o.flow = true;
  const auto r = simulate(prog, sw(4), o);
  int losses = 0, sends = 0;
  for (std::uint32_t rank = 0; rank < 4; ++rank) {
    INFO("rank " << rank);
    const auto& ops = prog.ops_of(rank);
    std::vector<double> forward_ends, backward_starts;
    std::map<std::string, double> arrived;  // by " mb j chunk c"
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& name = ops[i].name;
      if (name == "cross entropy") forward_ends.push_back(r.ops[rank][i].end.value());
      if (name == "cross entropy (backward)") backward_starts.push_back(r.ops[rank][i].start.value());
      if (name.rfind("recv activation", 0) == 0) arrived[name.substr(15)] = r.ops[rank][i].end.value();
      if (name.rfind("send gradient", 0) == 0 && arrived.count(name.substr(13)) != 0) {
        CHECK(r.ops[rank][i].start.value() >= arrived[name.substr(13)]);
        ++sends;
      }
    }
    std::sort(forward_ends.begin(), forward_ends.end());
    std::sort(backward_starts.begin(), backward_starts.end());
    REQUIRE(forward_ends.size() == backward_starts.size());
    for (std::size_t i = 0; i < forward_ends.size(); ++i) CHECK(backward_starts[i] >= forward_ends[i]);
    losses += static_cast<int>(forward_ends.size());
  }
  CHECK(losses == 8);  // ranks 0 and 3 each hold one direction's last stage: 4 micro-batches each
  CHECK(sends > 8);
}

TEST_CASE("engine::simulate step programs: Megatron's combined 1F1B overlaps a forward's all-to-alls with the backward "
          "before it",
          "[engine]") {
  // A 2-layer MoE on 2 GPUs, EP 2 in DP 2, no pipeline, 4 micro-batches, alpha-beta. Each
  // micro-batch's forward has 4 all-to-alls (dispatch and combine, 2 layers) and its backward
  // 4, each a = 2L + X/(2B). The combined schedule runs F0 alone, then F1 with B0, F2 with B1,
  // F3 with B2, then B3 alone. In a pair, as Megatron-Core issues it
  // (TransformerLayerSchedulePlan.run): per layer, the forward's attention, the backward's MLP,
  // the forward's MLP, the backward's attention, one after another on the SMs; the backward's
  // combine, the forward's dispatch, the backward's dispatch, the forward's combine, one after
  // another on its one communication stream. So with kernels free nothing is gained: 32a
  // either way; with kernels that take time, each all-to-all runs beside the other pass's
  // kernels. The pairs' kernels leave NCCL's 32 SMs to the all-to-alls (DeepEP's 20 under
  // deepep).
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}";
  const std::string moe = "heads: 4, kv_heads: 4, experts: 2, top_k: 1, moe_ffn: 512";
  const Tiny plain = tiny_on(cluster, moe, "{dp: 2, ep: 2}", 8);
  const Tiny paired = tiny_on(cluster, moe, "{dp: 2, ep: 2, overlap_moe_expert_parallel_comm: true}", 8);
  REQUIRE(plain.p.micro_batches == 4);
  auto text = [](const Tiny& t) {
    std::string out;
    for (const auto& op : parallelism::stage_order(t.p.schedule, 1, 1, 4, 0, 0, t.p.overlap_ep)) {
      out += std::string(op.pass == parallelism::Pass::kForward ? "F" : "B") + std::to_string(op.micro_batch) + (op.with_next ? "+" : "") + " ";
    }
    return out;
  };
  CHECK(text(plain) == "F0 B0 F1 B1 F2 B2 F3 B3 ");
  CHECK(text(paired) == "F0 F1+ B0 F2+ B1 F3+ B2 B3 ");
  const double X = 2.0 * 128 * 256, a = 2 * L + X / (2 * B);
  SimulateOptions o = timed(0.0);
  o.flow = false;
  const Program with = step_program(*paired.s.model, paired.p);
  const double t_plain = simulate(step_program(*plain.s.model, plain.p), sw(2), o).makespan.value();
  const double t_paired = simulate(with, sw(2), o).makespan.value();
  CHECK(t_paired == Approx(t_plain).epsilon(1e-12));
  CHECK(a > 0.0);
  {
    // Kernels of 1 us: the order on rank 0. The all-to-alls, by start, one at a time.
    const auto rs = simulate(with, sw(2), timed(1e-6));
    const auto& ops0 = with.ops_of(0);
    std::vector<std::size_t> by_start(ops0.size());
    for (std::size_t k = 0; k < ops0.size(); ++k) by_start[k] = k;
    std::stable_sort(by_start.begin(), by_start.end(),
                     [&](std::size_t x, std::size_t y) { return rs.ops[0][x].start.value() < rs.ops[0][y].start.value(); });
    std::string a2a;
    double free_at = 0.0;
    for (auto k : by_start) {
      if (ops0[k].name.rfind("EP all-to-all ", 0) != 0) continue;
      a2a += ops0[k].name.substr(14) + "; ";
      CHECK(rs.ops[0][k].start.value() >= free_at - 1e-15);
      free_at = rs.ops[0][k].end.value();
    }
    const std::string fwd = "dispatch layer 0; combine layer 0; dispatch layer 1; combine layer 1; ";
    const std::string bwd =
        "combine layer 1 (backward); dispatch layer 1 (backward); combine layer 0 (backward); dispatch layer 0 (backward); ";
    const std::string pair =
        "combine layer 1 (backward); dispatch layer 0; dispatch layer 1 (backward); combine layer 0; "
        "combine layer 0 (backward); dispatch layer 1; dispatch layer 0 (backward); combine layer 1; ";
    CHECK(a2a == fwd + pair + pair + pair + bwd);
    // The kernels, by start, in runs of one pass (F: a forward's, B: a backward's, O: the
    // optimizer): F0; per pair the backward's head and last layer's tail (B), then per layer
    // F attention, B MLP, F MLP, B attention, then the forward's head (F); B3; the optimizer.
    auto backward = [](const std::string& name) {
      for (const char* x : {"(backward)", "(data gradient)", "(weight gradient)"}) {
        if (name.find(x) != std::string::npos) return true;
      }
      return false;
    };
    std::string runs;
    for (auto k : by_start) {
      if (ops0[k].kind != ProgramOp::Kind::kCompute) continue;
      const char c = ops0[k].optimizer ? 'O' : backward(ops0[k].name) ? 'B' : 'F';
      if (runs.empty() || runs.back() != c) runs += c;
    }
    CHECK(runs == "F" + std::string("BFBFBFBFBF") + "BFBFBFBFBF" + "BFBFBFBFBF" + "BO");
  }
  std::set<int> second;
  for (const auto& op : with.ops_of(0)) {
    if (op.kind == ProgramOp::Kind::kCompute && op.stream == StreamKind::kCompute2) second.insert(op.kernel.sms_taken);
  }
  CHECK(second == std::set<int>{32});
  // A pair's kernel gives up those SMs only while a collective of its rank runs beside it:
  // with every kernel 0.1 us on all 132 SMs (the all-to-alls far longer), a pair's kernel
  // takes 132/100 of that if it starts while an all-to-all is in flight and 0.1 us if not
  // (both happen).
  SimulateOptions sm;
  sm.flow = false;
  sm.compute_time = [](const ProgramOp& op, std::uint32_t) { return Seconds::of(1e-7 * 132.0 / (132.0 - op.kernel.sms_taken)); };
  const auto rs = simulate(with, sw(2), sm);
  const auto& ops0 = with.ops_of(0);
  int slowed = 0, whole = 0;
  for (std::size_t k = 0; k < ops0.size(); ++k) {
    if (ops0[k].kind != ProgramOp::Kind::kCompute || !ops0[k].kernel.sms_while_comm) continue;
    const double start = rs.ops[0][k].start.value();
    bool busy = false, edge = false;
    for (std::size_t j = 0; j < ops0.size(); ++j) {
      if (ops0[j].kind != ProgramOp::Kind::kCollective || ops0[j].stream == StreamKind::kDataParallel) continue;
      const double a = rs.ops[0][j].start.value(), e = rs.ops[0][j].end.value();
      edge = edge || std::abs(start - a) < 1e-12 || std::abs(start - e) < 1e-12;
      busy = busy || (a < start && start < e);
    }
    if (edge) continue;
    const double took = rs.ops[0][k].end.value() - start;
    CHECK(took == Approx(busy ? 1.32e-7 : 1e-7).epsilon(1e-6));
    (busy ? slowed : whole) += 1;
  }
  CHECK(slowed > 0);
  CHECK(whole > 0);
  // Megatron-Core's checks, each naming the key; the composed step refuses it.
  // The pair with CP (ring steps on the side stream), ZeRO-3 (gathers on the parameter
  // stream), TP overlap (chunks on the side stream) and an MTP layer: each runs to its end
  // (these streams are shared by the pair's two passes, so the order is not imposed there).
  const std::string four = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 4}";
  for (const std::string& par : {std::string("{cp: 2, dp: 2, ep: 2, overlap_moe_expert_parallel_comm: true}"),
                                 std::string("{dp: 4, ep: 2, zero: 3, overlap_moe_expert_parallel_comm: true}"),
                                 std::string("{tp: 2, dp: 2, ep: 2, sp: true, tp_comm_overlap: true, overlap_moe_expert_parallel_comm: true}"),
                                 std::string("{dp: 4, ep: 2, overlap_moe_expert_parallel_comm: true}")}) {
    for (const char* extra : {"", ", layers: 2, mtp_layers: 1"}) {
      if (*extra != '\0' && par.find("tp:") != std::string::npos) continue;  // MTP is not built with TP
      INFO(par << extra);
      const Tiny x = tiny_on(four, moe + extra, par, 16);
      const auto rx = simulate(step_program(*x.s.model, x.p), sw(4), timed(1e-6));
      CHECK(rx.makespan.value() > 0.0);
    }
  }
  CHECK(paired.p.event_engine_only() == "parallel.overlap_moe_expert_parallel_comm");
  const std::string key = "parallel.overlap_moe_expert_parallel_comm: ";
  CHECK_THROWS_WITH(tiny_on(cluster, "heads: 4, kv_heads: 4", "{dp: 2, overlap_moe_expert_parallel_comm: true}", 8),
                    Catch::Contains(key + "overlaps expert parallelism's all-to-alls: it needs ep above 1"));
  CHECK_THROWS_WITH(tiny_on(cluster, moe, "{pp: 2, ep: 1, overlap_moe_expert_parallel_comm: true}", 8),
                    Catch::Contains(key + "overlaps expert parallelism's all-to-alls"));
  CHECK_THROWS_WITH(tiny_on("{gpu: h100-sxm, nodes: 1, gpus_per_node: 4}", moe, "{pp: 2, dp: 2, ep: 2, overlap_moe_expert_parallel_comm: true}", 8),
                    Catch::Contains(key + "with pp above 1 needs the interleaved schedule"));
  CHECK_THROWS_WITH(tiny_on(cluster, moe, "{dp: 2, ep: 2, recompute: full, overlap_moe_expert_parallel_comm: true}", 8),
                    Catch::Contains(key + "does not run with full recompute"));
  CHECK_THROWS_WITH(tiny_on(cluster, moe, "{dp: 2, ep: 2, schedule: gpipe, overlap_moe_expert_parallel_comm: true}", 8),
                    Catch::Contains(key + "pairs 1F1B's forwards and backwards: it needs schedule 1f1b (without a pipeline) or interleaved, not gpipe"));
}

TEST_CASE("engine::simulate step programs: DualPipe's overlapped pairs leave 20 SMs to their all-to-alls", "[engine]") {
  // An MoE on pp 4 with EP 2: the kernels of every overlapped pair (forward on the compute
  // stream, backward on the second) run on the SMs the all-to-all kernels leave, 20 of them
  // (DeepSeek-V3 report, sec. 3.2.2); kernels outside pairs keep every SM; without EP the pairs
  // leave none.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 8}";
  const std::string moe = "heads: 4, kv_heads: 4, layers: 4, experts: 2, top_k: 1, moe_ffn: 512";
  const Tiny t = tiny_on(cluster, moe, "{pp: 4, dp: 2, ep: 2, schedule: dualpipe}", 16);
  const Tiny dense = tiny_on(cluster, "heads: 4, kv_heads: 4, layers: 4", "{pp: 4, dp: 2, schedule: dualpipe}", 16);
  for (const Tiny* x : {&t, &dense}) {
    const Program prog = step_program(*x->s.model, x->p);
    std::set<int> second, taken;
    for (const auto& op : prog.ops_of(0)) {
      if (op.kind != ProgramOp::Kind::kCompute || op.optimizer) continue;
      if (op.stream == StreamKind::kCompute2) second.insert(op.kernel.sms_taken);
      taken.insert(op.kernel.sms_taken);
    }
    const int want = x == &t ? 20 : 0;
    CHECK(second == std::set<int>{want});
    CHECK(taken.count(want) == 1);
    if (x == &t) CHECK(taken.count(0) == 1);  // the unpaired chunks
  }
}

TEST_CASE("engine::simulate flows per connection: a transfer's bytes on several hashed routes, so ECMP collisions average out",
          "[engine]") {
  // One rail of a Clos: 16 single-GPU nodes, 8 per leaf, 8 spines, every link B. Nodes 0-7
  // each send S to nodes 8-15 at once: 8 transfers over leaf 0's 8 spine uplinks. Alone, a
  // transfer takes 4 link latencies (NIC, up, down, NIC) + S/B however many flows it is.
  const auto fabric = topology::build_clos({.nodes = 16, .gpus_per_node = 1, .nodes_per_leaf = 8, .spines = 8,
                                            .scale_out = {units::gbyte_per_s(50), units::us(1), {}}});
  const double S = 50e6, T = S / B;  // 1 ms at B
  auto run = [&](int senders, std::uint32_t q) {
    Program p;
    for (std::uint32_t i = 0; i < 16; ++i) {
      const bool sends = i < 8 && static_cast<int>(i) < senders, receives = i >= 8 && static_cast<int>(i) - 8 < senders;
      p.ranks.push_back({i, {}});
      if (sends) p.ranks.back().ops.push_back(p2p(true, i + 8, S));
      if (receives) p.ranks.back().ops.push_back(p2p(false, i - 8, 0.0));
    }
    SimulateOptions o = model(true);
    o.flows_per_connection = q;
    return simulate(p, fabric, o).makespan.value();
  };
  // One transfer: its flows share its NIC, so splitting it changes nothing.
  CHECK(run(1, 256) == Approx(run(1, 1)).epsilon(1e-9));
  CHECK(run(1, 1) == Approx(4 * L + T).epsilon(1e-9));
  // Eight: one flow each, hashed onto 8 spines, collide (all eight on distinct spines has odds
  // 8!/8^8 = 0.24 %), and the collided pair moves at half the rate: at least 2 S/B.
  CHECK(run(8, 1) >= 2 * T);
  // 256 flows each (2,048 on 8 uplinks, 256 a link on average; the binomial spread about 15):
  // within a quarter of the balanced S/B, as an adaptive fabric would be.
  const double spread = run(8, 256);
  CHECK(spread >= T);
  CHECK(spread <= 1.25 * (T + 4 * L));
}

TEST_CASE("engine::simulate step programs: torchtitan's per-op checkpointing keeps every other matmul and attention's output",
          "[engine]") {
  // A 2-layer Llama-like model (h 256, 4 heads of 64 and 4 KV heads, SwiGLU ffn 1024), 128
  // tokens, one micro-batch. torchtitan's policy saves the 1st, 3rd, 5th and 7th matmuls of a
  // block (q, v, w1, w2), attention's output and the TP reduce-scatters; it reruns k, o and w3
  // and every element-wise kernel before the layer's backward (and, under SP, the all-gathers).
  auto make = [](const std::string& kernels, const std::string& parallel, int gpus, const std::string& model = "") {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: " + std::to_string(gpus) +
                             "}\nmodel: {layers: 2, hidden: 256, ffn: 1024, vocab: 512, heads: 4, kv_heads: 4" + model +
                             "}\ntraining: {seq_len: 128, global_batch: 1, micro_batch: 1, kernels: " + kernels + "}\nparallel: " +
                             parallel + "\n";
    Tiny t{parse_scenario(text, "t.yaml", {}, test::presets()), {}, 0.0};
    t.p = make_plan(t.s);
    return t;
  };
  auto reruns = [](const Tiny& t) {
    std::map<std::string, double> flops;  // GEMMs and attention by name, FLOPs rerun
    int elementwise = 0, gathers = 0, scatters = 0;
    const Program prog = step_program(*t.s.model, t.p);
    for (const auto& op : prog.ops_of(0)) {
      if (op.name.find("(recompute)") == std::string::npos) continue;
      if (op.kind == ProgramOp::Kind::kCollective) {
        gathers += op.op == collectives::Op::kAllGather;
        scatters += op.op != collectives::Op::kAllGather;
      } else if (op.kernel.kind == parallelism::KernelKind::kElementwise) {
        ++elementwise;
      } else {
        flops[op.kernel.name] += op.kernel.flops.value();
      }
    }
    return std::tuple{flops, elementwise, gathers, scatters};
  };
  const double T = 128, h = 256, f = 1024;
  {
    const auto [flops, elementwise, gathers, scatters] = reruns(make("eager", "{recompute: op}", 1));
    // Per layer: k (h x 256), o (256 x h), w3 (h x f): twice, one per layer.
    CHECK(flops.size() == 3);
    CHECK(flops.count("k projection (recompute)") == 1);
    CHECK(flops.at("k projection (recompute)") == Approx(2 * 2 * T * h * 256).epsilon(1e-12));
    CHECK(flops.at("output projection (recompute)") == Approx(2 * 2 * T * 256 * h).epsilon(1e-12));
    CHECK(flops.at("mlp up/gate (recompute)") == Approx(2 * 2 * T * h * f).epsilon(1e-12));  // w3, the up GEMM
    int forward_elementwise = 0;
    const Tiny plain = make("eager", "{}", 1);
    for (const auto& k : parallelism::layer_forward(*plain.s.model, 0, shard_of(*plain.s.model, plain.p))) {
      forward_elementwise += k.kind == parallelism::KernelKind::kElementwise && k.pass != parallelism::KernelPass::kBackward;
    }
    CHECK(elementwise == 2 * forward_elementwise);
    CHECK(gathers + scatters == 0);
  }
  {
    // Fused kernels: the QKV GEMM reruns its K part (a third here), gate/up its up half.
    const auto [flops, elementwise, gathers, scatters] = reruns(make("fused", "{recompute: op}", 1));
    CHECK(flops.at("qkv projection (recompute)") == Approx(2 * 2 * T * h * 256).epsilon(1e-12));
    CHECK(flops.at("mlp up/gate (recompute)") == Approx(2 * 2 * T * h * f).epsilon(1e-12));
    CHECK(flops.at("output projection (recompute)") == Approx(2 * 2 * T * 256 * h).epsilon(1e-12));
    CHECK(flops.size() == 3);
  }
  {
    // TP 2 with SP: each block's all-gather reruns, its reduce-scatter does not.
    const auto [flops, elementwise, gathers, scatters] = reruns(make("fused", "{tp: 2, sp: true, recompute: op}", 2));
    CHECK(gathers == 2 * 2);
    CHECK(scatters == 0);
  }
  // Memory per layer, by hand: per token the block's input 2h, q 2·256, v 2·256, attention's
  // output 2·256 and statistics 4·4, w1's output 2f, w2's 2h; with TP 2 and SP the input is
  // halved, the TP-split ones halved, w2's whole partial output kept, and the two
  // reduce-scatters' outputs (2h/2 each) added.
  const Tiny one = make("fused", "{recompute: op}", 1), two = make("fused", "{tp: 2, sp: true, recompute: op}", 2);
  auto layer = [](const Tiny& t) {
    return parallelism::layer_activation_bytes(*t.s.model, 0, shard_of(*t.s.model, t.p), t.p.recompute, t.p.dropout).value();
  };
  CHECK(layer(one) == Approx(T * (2 * h + 3 * 512 + 16 + 2 * f + 2 * h)).epsilon(1e-12));
  CHECK(layer(two) == Approx(T * (h + (3 * 512 + 16) / 2 + f + 2 * h + 2 * h)).epsilon(1e-12));
  // The composed step refuses it; models it is not written for are refused, naming the key.
  CHECK(one.p.event_engine_only() == "parallel.recompute");
  CHECK_THROWS_WITH(make("fused", "{recompute: op}", 1, ", experts: 2, top_k: 1, moe_ffn: 512"),
                    Catch::Contains("parallel.recompute: op (torchtitan's per-op checkpointing) is built for dense models"));
}

TEST_CASE("engine::simulate step programs: selective recompute reruns the modules it names before each layer's backward",
          "[engine]") {
  // A 2-layer MoE model with multi-head latent attention on 1 GPU, one micro-batch. Per layer the
  // forward has one attention kernel, two block-opening norms, two MLA up-projection GEMMs (q
  // and kv) and the RoPE they feed, and one routed-expert activation (fused SwiGLU): each named
  // module reruns its own. Under FP8 the activation's output is cast for the down-projection
  // (a forward kernel, rerun with it); the casts of output gradients (backward kernels) are not.
  const std::string model =
      "heads: 4, kv_heads: 4, experts: 4, top_k: 2, moe_ffn: 256, q_lora_rank: 64, kv_lora_rank: 32, "
      "qk_nope_head_dim: 32, qk_rope_head_dim: 16, v_head_dim: 32";
  auto recomputed = [&](const std::string& modules, const std::string& precision) {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 1}\nmodel: {layers: 2, hidden: 256, ffn: 1024, "
                             "vocab: 512, " + model + "}\ntraining: {seq_len: 128, global_batch: 1, micro_batch: 1, precision: " +
                             precision + "}\nparallel: {recompute: selective, recompute_modules: " + modules + "}\n";
    const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
    const Program prog = step_program(*s.model, make_plan(s));
    std::map<std::string, int> n;
    for (const auto& op : prog.ops_of(0)) {
      if (op.name.find("(recompute)") == std::string::npos) continue;
      const auto& k = op.kernel;
      CHECK(k.pass != parallelism::KernelPass::kBackward);
      ++n[k.kind == parallelism::KernelKind::kAttention                            ? "attention"
          : k.module == parallelism::kLayerNorm                                    ? "norm"
          : k.module == parallelism::kMlaUpProj && k.kind == parallelism::KernelKind::kGemm ? "up-projection"
          : k.module == parallelism::kMlaUpProj                                    ? "rope"
          : k.name.rfind("fp8 cast", 0) == 0                                       ? "fp8 cast"
          : k.module == parallelism::kMoeAct                                       ? "activation"
                                                                                   : "other"];
    }
    return n;
  };
  using M = std::map<std::string, int>;
  for (const char* precision : {"bf16", "fp8"}) {
    INFO(precision);
    const bool fp8 = std::string(precision) == "fp8";
    CHECK(recomputed("[core_attn]", precision) == M{{"attention", 2}});
    CHECK(recomputed("[layernorm]", precision) == M{{"norm", 4}});
    CHECK(recomputed("[mla_up_proj]", precision) == M{{"up-projection", 4}, {"rope", 2}});
    CHECK(recomputed("[moe_act]", precision) == (fp8 ? M{{"activation", 2}, {"fp8 cast", 2}} : M{{"activation", 2}}));
  }
  CHECK(recomputed("[core_attn, layernorm, mla_up_proj, moe_act]", "bf16") ==
        M{{"attention", 2}, {"norm", 4}, {"up-projection", 4}, {"rope", 2}, {"activation", 2}});
}

TEST_CASE("engine::simulate step programs: the all-to-all dispatcher's order around the experts, forward, backward and recompute",
          "[engine]") {
  // Megatron-Core's MoEAlltoAllTokenDispatcher: permute, all-to-all, then the received chunks
  // sorted by local expert (2 a GPU here: 4 experts over EP 2); sorted back, all-to-all, then the
  // unpermute. The backward runs the transposes in reverse; full recompute reruns the forward's
  // before it. The ops of layer 0, in program order on rank 0.
  const std::string cluster = "{gpu: h100-sxm, nodes: 1, gpus_per_node: 2}";
  auto order = [&](const std::string& recompute) {
    const Tiny t = tiny_on(cluster, "layers: 1, heads: 4, kv_heads: 4, experts: 4, top_k: 2, moe_ffn: 512",
                           "{dp: 2, ep: 2, recompute: " + recompute + "}", 2);
    const Program prog = step_program(*t.s.model, t.p);
    std::string out;
    for (const auto& op : prog.ops_of(0)) {
      for (const char* x : {"token permute", "sort chunks", "expert up/gate", "expert down", "token unpermute", "EP all-to-all"}) {
        if (op.name.find(x) != std::string::npos && op.name.find("micro-batch 1") == std::string::npos) {
          out += op.name + "; ";
          break;
        }
      }
    }
    return out;
  };
  const std::string all = order("none");
  INFO(all);
  auto in_order = [&](const std::string& text, const std::vector<std::string>& names) {
    std::size_t at = 0;
    for (const auto& n : names) {
      const auto next = text.find(n, at);
      if (next == std::string::npos) return false;
      at = next + n.size();
    }
    return true;
  };
  CHECK(in_order(all, {"token permute;", "dispatch layer 0;", "sort chunks;", "expert up/gate;", "expert down;", "sort chunks back;",
                       "combine layer 0;", "token unpermute;"}));
  CHECK(in_order(all, {"combine layer 0;", "token unpermute;", "token unpermute (backward);", "combine layer 0 (backward);",
                       "sort chunks back (backward);", "expert down (data gradient);", "expert up/gate (data gradient);",
                       "sort chunks (backward);", "dispatch layer 0 (backward);", "token permute (backward);"}));
  CHECK(!in_order(all, {"dispatch layer 0;", "token permute;"}));
  const std::string full = order("full");
  INFO(full);
  CHECK(in_order(full, {"combine layer 0;", "token unpermute;", "token permute;", "dispatch layer 0 (recompute);", "sort chunks;",
                        "sort chunks back;", "combine layer 0 (recompute);", "token unpermute;", "token unpermute (backward);",
                        "combine layer 0 (backward);", "dispatch layer 0 (backward);", "token permute (backward);"}));
}
