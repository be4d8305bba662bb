// Failures and checkpoints: the Monte Carlo against Daly's closed forms, the lifetime sampling
// against the Weibull survival function, checkpoint traffic against hand-computed flow times.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "core/scenario.hpp"
#include "failures/checkpoint.hpp"
#include "failures/monte_carlo.hpp"
#include "failures/reliability.hpp"
#include "parallelism/plan.hpp"
#include "parallelism/model_math.hpp"
#include "test_support.hpp"
#include "topology/families.hpp"
#include "topology/spec.hpp"

using namespace wallsim;
using namespace wallsim::failures;

namespace {

/// One exponential cause at `rate` per second, recovery R = detection + restart + read.
RunModel daly_model(double work_s, double rate, Seconds detection, Seconds restart, Seconds reload, Seconds write) {
  RunModel m;
  m.work = Seconds::of(work_s);
  Cause c;
  c.name = "any";
  c.component = "software";
  c.rate = Frequency::of(rate);
  m.causes = {c};
  m.detection = detection;
  m.restart = restart;
  m.reload = reload;
  m.write = write;
  return m;
}

}  // namespace

TEST_CASE("failures Monte Carlo mean wall time is Daly's expectation", "[failures]") {
  // M = 2 h between failures, tau = 30 min of compute per segment, delta = 2 min writes,
  // R = 5 + 4 + 1 = 10 min recovery, 40 segments (20 h of work). Daly (2006): each segment costs
  // M e^{R/M} (e^{(tau+delta)/M} - 1), the last one e^{tau/M} - 1 (no write after it).
  const double M = 7200.0, tau = 1800.0;
  const RunModel m = daly_model(40 * tau, 1.0 / M, units::minutes(5), units::minutes(4), units::minutes(1),
                                units::minutes(2));
  const RunStats s = simulate_run(m, Seconds::of(tau), 4000, 7);
  const double expected = daly_expected_wall(Seconds::of(tau), units::minutes(2), units::minutes(10),
                                             Seconds::of(M), 40).value();
  INFO("expected " << expected / 86400.0 << " d, got " << s.days.mean << " +- " << s.days.ci95);
  CHECK(std::fabs(s.days.mean * 86400.0 - expected) < 2.0 * s.days.ci95 * 86400.0);
  // Poisson failures: E[interruptions] = rate x E[wall].
  CHECK(std::fabs(s.interruptions.mean - expected / M) < 2.0 * s.interruptions.ci95);
  CHECK(s.interruptions_by_cause[0].mean == s.interruptions.mean);
}

TEST_CASE("failures the best interval is Daly's (goodput falls on both sides)", "[failures]") {
  // M = 3 h, delta = 60 s: Young's sqrt(2 delta M) = 1,138.4 s; Daly's adds the terms of
  // x = delta / 2M = 1/360: 1138.4 (1 + sqrt(x)/3 + x/9) - 60 = 1,098.8 s. The same random
  // streams for each interval (common random numbers) make the comparison sharp.
  const double M = 10800.0;
  const RunModel m = daly_model(30 * 86400.0, 1.0 / M, units::minutes(5), units::minutes(5), Seconds::of(60.0),
                                Seconds::of(60.0));
  const Seconds daly = daly_interval(Seconds::of(60.0), Seconds::of(M));
  CHECK(daly.value() == Approx(1098.8).epsilon(0.0005));
  CHECK(young_interval(Seconds::of(60.0), Seconds::of(M)).value() == Approx(std::sqrt(2.0 * 60 * M)));
  const double at = simulate_run(m, daly, 400, 3).goodput.mean;
  CHECK(at > simulate_run(m, daly * 0.4, 400, 3).goodput.mean);
  CHECK(at > simulate_run(m, daly * 2.5, 400, 3).goodput.mean);
}

TEST_CASE("failures the same seed gives the same run, another seed another", "[failures]") {
  const RunModel m = daly_model(86400.0, 1.0 / 3600.0, units::minutes(1), units::minutes(1), units::minutes(1),
                                Seconds::of(30.0));
  const RunStats a = simulate_run(m, units::minutes(20), 50, 11), b = simulate_run(m, units::minutes(20), 50, 11);
  const RunStats c = simulate_run(m, units::minutes(20), 50, 12);
  CHECK(a.days.mean == b.days.mean);
  CHECK(a.interruptions.mean == b.interruptions.mean);
  CHECK(a.lost_hours_by_cause[0].mean == b.lost_hours_by_cause[0].mean);
  CHECK(a.days.mean != c.days.mean);
}

TEST_CASE("failures Weibull pools fail as the survival function says", "[failures]") {
  // n units of shape k, scale eta, none replaced: the count in [0, T) is Binomial(n, p) with
  // p = 1 - exp(-(T/eta)^k). n = 2000, k = 0.7 (infant mortality), T/eta = 0.05: p = 0.0994.
  const double n = 2000, k = 0.7, p = 1.0 - std::exp(-std::pow(0.05, k));
  double sum = 0.0;
  const int seeds = 200;
  for (int s = 0; s < seeds; ++s) {
    sum += static_cast<double>(weibull_pool_failures(n, k, Seconds::of(1000.0), Seconds::of(50.0), s).size());
  }
  const double sd_of_mean = std::sqrt(n * p * (1.0 - p) / seeds);
  CHECK(std::fabs(sum / seeds - n * p) < 4.0 * sd_of_mean);
  // Failure times come in order and inside the horizon.
  const auto times = weibull_pool_failures(n, k, Seconds::of(1000.0), Seconds::of(50.0), 1);
  CHECK(std::is_sorted(times.begin(), times.end()));
  CHECK(times.back() < 50.0);
}

TEST_CASE("failures a reserved share of a link slows an all-reduce as the flow model says", "[failures][collectives]") {
  // 4 GPUs on one switch, 100 GB/s links, no latency. A checkpoint write takes 50 GB/s of GPU 0's
  // uplink for the whole collective. Ring all-reduce of 400 MB: 2(n-1) = 6 steps of 100 MB, each
  // bounded by GPU 0's send at 50 GB/s: 6 x 2 ms = 12 ms (healthy: 6 ms).
  const auto t = topology::build_switch({.n = 4, .link = {units::gbyte_per_s(100), Seconds{}, {}}, .switch_latency = {}});
  const auto flow = collectives::NetworkModel::build("flow", "network");
  std::string why;
  const auto ring = collectives::build_schedule(t, collectives::Op::kAllReduce, collectives::Algo::kRing,
                                                {0, 1, 2, 3}, Bytes::of(400e6), {}, &why);
  REQUIRE(ring);
  std::vector<double> reserved(t.num_links(), 0.0);
  const auto up0 = t.route(0, 1, 0).front();
  reserved[up0] = 50e9;
  collectives::CostParams healthy, busy;
  busy.reserved_Bps = reserved;
  CHECK(flow->time(t, *ring, healthy).value() == Approx(6e-3));
  CHECK(flow->time(t, *ring, busy).value() == Approx(12e-3));
  // The same as a background flow of infinite bytes that max-min gives half of the link: one
  // ring step's four flows plus a write from GPU 0 to GPU 2 share GPU 0's uplink equally.
  std::vector<collectives::Flow> flows;
  for (topology::NodeId r = 0; r < 4; ++r) flows.push_back({t.route(r, (r + 1) % 4, r), Bytes::of(100e6), Seconds{}, 1.0});
  flows.push_back({t.route(0, 2, 9), Bytes::of(std::numeric_limits<double>::infinity()), Seconds{}, 1.0});
  const auto finish = collectives::simulate_flows(t, flows);
  CHECK(finish[0].value() == Approx(2e-3));  // 100 MB at 50 GB/s
  CHECK(std::isinf(finish[4].value()));
}

TEST_CASE("failures checkpoints are 14 bytes per parameter, written at the storage bandwidth", "[failures]") {
  Scenario s = parse_scenario(R"(
cluster: {gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_up: {preset: nvswitch-h100},
          scale_out: {preset: roce-400g, topology: clos, nodes_per_leaf: 2, spines: 1},
          storage: {bandwidth: 10 GB/s}}
model: llama3-8b
training: {seq_len: 8192, global_batch: 16, micro_batch: 1}
parallel: {tp: 8, dp: 2, zero: 1}
)", "test", {}, test::presets());
  const double params = parallelism::count_params(*s.model).total;
  auto plan = parallelism::make_plan(s);
  const CheckpointShards c = checkpoint_shards(s, plan);
  CHECK(c.total.value() == Approx(14.0 * params));
  CHECK(c.writers.size() == 16);  // the distributed optimizer: every GPU writes its shard
  s.parallel->zero = 0;
  CHECK(checkpoint_shards(s, parallelism::make_plan(s)).writers.size() == 8);  // the first replica
  // Storage (10 GB/s, one spine so that ECMP cannot split it unevenly) is the bottleneck of
  // the 16 writes: total / 10 GB/s, plus microseconds of path latency.
  const auto t = topology::build_cluster(s.cluster);
  const double time = makespan(t, checkpoint_flows(t, c, false)).value();
  CHECK(time == Approx(c.total.value() / 10e9).epsilon(0.001));
  // As an async write, the storage link's load is its whole 10 GB/s, capped at half (5 GB/s):
  // max-min would share it evenly with a training flow. A GPU's 50 GB/s NIC carries its shard
  // at 10 GB/s / 16 = 0.625 GB/s, under the cap.
  const auto flows = checkpoint_flows(t, c, false);
  const auto load = average_load(t, flows, collectives::simulate_flows(t, flows));
  double storage = 0.0;
  for (topology::LinkId l = 0; l < t.num_links(); ++l) {
    if (t.link(l).cls == topology::LinkClass::kStorage && load[l] > 0.0) storage += load[l];
  }
  CHECK(storage == Approx(5e9).epsilon(0.001));
  CHECK(load[flows[0].path.front()] == Approx(10e9 / 16).epsilon(0.001));
  // Without storage nodes there is nowhere to write.
  s.cluster.storage.reset();
  const auto bare = topology::build_cluster(s.cluster);
  CHECK_THROWS_WITH(checkpoint_flows(bare, c, false), Catch::Matchers::Contains("cluster.storage"));
}

TEST_CASE("failures bad run sections name the key", "[failures][core]") {
  const std::string base = R"(
cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8, scale_up: {preset: nvswitch-h100}}
model: llama3-8b
training: {seq_len: 8192, global_batch: 8}
parallel: {tp: 8}
)";
  auto bad = [&](const std::string& run, const std::string& key) {
    INFO(run);
    CHECK_THROWS_WITH(parse_scenario(base + run, "test", {}, test::presets()), Catch::Matchers::Contains(key));
  };
  bad("run: {tokens: 1B, failures: {rates: llama-h100}}", "run.failures.rates");
  bad("run: {tokens: 1B, checkpoint: {mode: async}}", "run.checkpoint.snapshot_bandwidth");
  bad("run: {tokens: 1B, checkpoint: {mode: sometimes}}", "run.checkpoint.mode");
  bad("run: {tokens: 1B, failures: {rates: llama3-h100, spare_nodes: -1}}", "run.failures.spare_nodes");
  bad("run: {tokens: 1B, failures: {rates: {window: 1 d, gpus: 8, detection: 1 min, restart: 1 min, "
      "causes: {x: {component: gpu, count: 1, weibull_shape: -1}}}}}",
      "run.failures.rates.causes.x.weibull_shape");
  bad("run: {tokens: 1B, failures: {rates: {window: 1 d, gpus: 8, detection: 1 min, restart: 1 min, "
      "causes: {x: {component: toaster, count: 1}}}}}",
      "run.failures.rates.causes.x.component");
  // A Weibull cause or a rate given directly parse; a preset gives Llama 3's 419 + 47.
  const Scenario s = parse_scenario(base + "run: {tokens: 1B, failures: {rates: llama3-h100}}", "test", {}, test::presets());
  double count = 0.0;
  for (const auto& c : s.run->failures->causes) {
    const double units = c.per == "gpu" ? 16384 : c.per == "node" ? 2048 : 1;
    count += c.rate.value() * units * 54 * 86400;
  }
  CHECK(count == Approx(466));
}

TEST_CASE("failures a run that cannot finish is bad input, not an endless loop", "[failures]") {
  // Failures every 10 s on average and a 10-minute recovery: the job never runs for long.
  const RunModel m = daly_model(3600.0, 0.1, units::minutes(5), units::minutes(4), units::minutes(1), Seconds::of(1.0));
  CHECK_THROWS_WITH(simulate_run(m, Seconds::of(60.0), 1, 1), Catch::Matchers::Contains("does not finish"));
}

TEST_CASE("failures uniform_index draws the same indices on every standard library", "[failures]") {
  // std::mt19937_64's output is fixed by the standard; the first six from its default seed
  // 5489 are x1..x6 = 14514284786278117030, 4620546740167642908, 13109570281517897720,
  // 17462938647148434322, 355488278567739596, 7469126240319926998.
  SECTION("n = 10: floor(10 x / 2^64), no rejection (2^64 mod 10 = 6, never above a low word here)") {
    // 10 x / 2^64 = 7.87, 2.50, 7.11, 9.47, 0.19, 4.05.
    std::mt19937_64 rng;
    std::vector<std::size_t> got;
    for (int i = 0; i < 6; ++i) got.push_back(uniform_index(rng, 10));
    CHECK(got == std::vector<std::size_t>{7, 2, 7, 9, 0, 4});
  }
  SECTION("n = 2^63 + 1: draws whose low word falls below 2^64 mod n are redrawn") {
    // x (2^63 + 1) for even x is x/2 in the high word and x in the low one; 2^64 mod n = 2^63 - 1.
    // x1 >= 2^63 - 1: index x1 / 2. x2 = 4.6e18 < 2^63 - 1: rejected. x3: index x3 / 2.
    std::mt19937_64 rng;
    const std::size_t n = (std::size_t{1} << 63) + 1;
    CHECK(uniform_index(rng, n) == 7257142393139058515u);
    CHECK(uniform_index(rng, n) == 6554785140758948860u);
  }
  SECTION("n = 1 is always 0, and an empty range is a bug") {
    std::mt19937_64 rng;
    CHECK(uniform_index(rng, 1) == 0);
    CHECK_THROWS_AS(uniform_index(rng, 0), std::logic_error);
  }
}

TEST_CASE("failures the whole-run simulation is bounded in trials and in events, before it runs", "[failures]") {
  // Llama 3 8B on one 8-GPU node: a run's interruptions do not depend on the cluster's size
  // (tokens / per-GPU rate x per-GPU failure rate), so 10^16 tokens are ~10^4 per trial.
  const std::string text = R"(
cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8, scale_up: {preset: nvswitch-h100}, storage: {bandwidth: 100 GB/s}}
model: llama3-8b
training: {seq_len: 8192, global_batch: 8}
parallel: {tp: 8}
run: {tokens: 1e16, failures: {rates: llama3-h100}}
)";
  const Scenario s = parse_scenario(text, "test", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_step_fabric(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "--network");
  ReliabilityOptions o;
  o.network = net.get();
  o.blast_radius = false;
  SECTION("trials: 1 to 100,000") {
    for (int trials : {0, -1, 100'001}) {
      o.trials = trials;
      CHECK_THROWS_WITH(analyze_run(s, plan, t, o),
                        Catch::Matchers::StartsWith("--trials: " + std::to_string(trials) + " is out of range (1 to 100,000"));
    }
  }
  SECTION("events: expected interruptions per trial x trials (search included) at most 10^8") {
    o.trials = 1000;
    CHECK_THROWS_WITH(analyze_run(s, plan, t, o), Catch::Matchers::StartsWith("run.tokens: 1e+16 tokens take"));
    CHECK_THROWS_WITH(analyze_run(s, plan, t, o), Catch::Matchers::Contains("over 7400 trials"));  // 1000 + 16 x 400
  }
}
