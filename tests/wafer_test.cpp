// Wafer-scale meshes: hop latency, mesh collectives against their closed forms and against
// the flow model, the coarsening bound, routing-entry and SRAM limits, GEMM algorithms.
#include <catch2/catch.hpp>

#include <cmath>

#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "test_support.hpp"
#include "topology/families.hpp"
#include "topology/spec.hpp"
#include "wafer/gemm.hpp"

using namespace wallsim;
using Catch::Matchers::Contains;

namespace {

wafer::MeshSpec small_mesh(int x, int y) {
  wafer::MeshSpec m;
  m.name = "test";
  m.x = x;
  m.y = y;
  m.link = Bandwidth::of(4e9);
  m.hop = Seconds::of(1e-9);
  m.overhead = Seconds::of(5e-9);
  m.sram = Bytes::of(48e3);
  m.flops = FlopRate::of(100e9);
  return m;
}

topology::Topology fabric_of(const wafer::MeshSpec& m) { return wafer::mesh_topology(m); }

double flow_time(const wafer::MeshSpec& m, const collectives::Schedule& s) {
  return wafer::flow_time(m, fabric_of(m), s).value();
}

}  // namespace

TEST_CASE("wafer hop latency is the Manhattan distance times the hop", "[wafer]") {
  const auto m = small_mesh(8, 6);
  const auto t = fabric_of(m);
  for (int c = 0; c < 8; ++c) {
    for (int r = 0; r < 6; ++r) {
      const auto path = t.route(0, static_cast<topology::NodeId>(r * 8 + c), 1);
      CHECK(path.size() == static_cast<std::size_t>(c + r));
      CHECK(t.path_latency(path).value() == Approx((c + r) * 1e-9));
    }
  }
}

TEST_CASE("wafer row and 2-D collectives: closed forms, by hand and under the flow model", "[wafer]") {
  const auto m = small_mesh(8, 6);
  const Bytes s = Bytes::of(64e3);
  // Folded ring over 8 cores: 14 steps of 8 kB, 2 hops each: 14 (5 + 2 + 2000) ns.
  CHECK(wafer::row_allreduce(m, 8, s).value() == Approx(14 * (5e-9 + 2e-9 + 8e3 / 4e9)));
  // Two cores: 2 steps of 32 kB, one hop.
  CHECK(wafer::row_allreduce(m, 2, s).value() == Approx(2 * (5e-9 + 1e-9 + 32e3 / 4e9)));
  for (int n : {2, 3, 5, 8}) {
    INFO("n " << n);
    CHECK(flow_time(m, wafer::row_allreduce_schedule(m, n, s)) == Approx(wafer::row_allreduce(m, n, s).value()).epsilon(1e-9));
  }
  // The folded ring visits every core once and its edges are at most 2 apart.
  for (int n : {3, 4, 7, 8}) {
    const auto order = wafer::folded_ring(n);
    REQUIRE(order.size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) CHECK(std::abs(order[i] - order[(i + 1) % n]) <= 2);
  }
  int chunks = 0;
  const double bcast = wafer::row_broadcast(m, 8, s, &chunks).value();
  // T(m) = (n - 2 + m)(a + h + S/(m B)), minimised near sqrt((n-2) S / (B (a+h))) = 126.5.
  CHECK(chunks >= 126);
  CHECK(chunks <= 127);
  CHECK(bcast == Approx((6 + chunks) * (6e-9 + 64e3 / chunks / 4e9)));
  CHECK(flow_time(m, wafer::row_broadcast_schedule(m, 8, s, chunks)) == Approx(bcast).epsilon(1e-9));
  // 2-D: 2 steps of S/X and 2 (Y-1) steps of S/(XY).
  const double twod = 14 * (7e-9 + 8e3 / 4e9) + 10 * (7e-9 + 64e3 / 48 / 4e9);
  CHECK(wafer::allreduce_2d(m, s).value() == Approx(twod));
  CHECK(flow_time(m, wafer::allreduce_2d_schedule(m, s)) == Approx(twod).epsilon(1e-9));
}

TEST_CASE("wafer coarsening into tiles changes collective times by at most (k-1)/(n-1)", "[wafer]") {
  const auto core = small_mesh(32, 24);
  const Bytes s = Bytes::of(16e3);
  for (int k : {2, 4, 8}) {
    INFO("k " << k);
    const auto tile = wafer::coarsen(core, k);
    CHECK(tile.x == 32 / k);
    CHECK(tile.sram.value() == Approx(48e3 * k * k));
    // Along a row of 32 cores: exactly (n - k)/(n - 1) of the core-level time.
    const double row_core = wafer::row_allreduce(core, 32, s).value();
    const double row_tile = wafer::row_allreduce(tile, 32 / k, s).value();
    CHECK(row_tile / row_core == Approx((32.0 - k) / 31.0));
    // The tile-level schedule under the flow model agrees with the tile closed form, and
    // the core-level schedule with the core closed form: the bound holds for simulations too.
    CHECK(flow_time(tile, wafer::row_allreduce_schedule(tile, 32 / k, s)) == Approx(row_tile).epsilon(1e-9));
    const double bound = (k - 1.0) / 31.0;
    CHECK(std::abs(row_tile - row_core) / row_core <= bound + 1e-12);
    // 2-D: within the larger of the two dimensions' bounds.
    const double all_core = wafer::allreduce_2d(core, s).value(), all_tile = wafer::allreduce_2d(tile, s).value();
    CHECK(std::abs(all_tile - all_core) / all_core <= std::max(bound, (k - 1.0) / 23.0) + 1e-12);
    CHECK(flow_time(tile, wafer::allreduce_2d_schedule(tile, s)) == Approx(all_tile).epsilon(1e-9));
  }
  CHECK_THROWS_WITH(wafer::coarsen(core, 5), Contains("does not divide"));
}

TEST_CASE("wafer GEMM: one step by hand, routing-entry and SRAM limits", "[wafer]") {
  auto m = small_mesh(8, 8);
  // p = 2, n = 4: blocks of 2x2 (8 B), 2 steps of 16 FLOP; MeshGEMM on 2 cores shifts 1 hop.
  const auto r = wafer::gemm_on_grid(m, wafer::GemmAlgo::kMeshGemm, 4, 2);
  REQUIRE(r.valid);
  const double compute = 16 / 100e9, comm = 5e-9 + 1e-9 + 8 / 4e9;
  const double skew = 5e-9 + 1e-9 + 8 / 4e9;
  CHECK(r.time.value() == Approx(skew + comm + std::max(compute, comm) + compute));
  // A router with 4 routes: Cannon (6) and MeshGEMM (8) are invalid, SUMMA (2) runs.
  m.routing_entries = 4;
  const auto cannon = wafer::gemm(m, wafer::GemmAlgo::kCannon, 64);
  CHECK_FALSE(cannon.valid);
  CHECK_THAT(cannon.why, Contains("cannon needs 6 routes per router; the wafer's routers hold 4"));
  CHECK_FALSE(wafer::gemm(m, wafer::GemmAlgo::kMeshGemm, 64).valid);
  CHECK(wafer::gemm(m, wafer::GemmAlgo::kSumma, 64).valid);
  // SRAM: 8192 on a 8x8 grid needs blocks of 1024x1024 (10 MB per core with buffers).
  m.routing_entries = 24;
  const auto big = wafer::gemm(m, wafer::GemmAlgo::kSumma, 8192);
  CHECK_FALSE(big.valid);
  CHECK_THAT(big.why, Contains("per core; a core has"));
}

TEST_CASE("wafer MeshGEMM beats SUMMA and Cannon on WSE-3 for 2K-8K matrices (WaferLLM's shape)", "[wafer]") {
  const Scenario s = parse_scenario("cluster: cs3-x4\n", "t.yaml", {}, test::presets());
  const auto m = wafer::mesh_of(s.cluster);
  CHECK(m.routing_entries == 24);
  for (long long n : {2048, 4096, 8192}) {
    INFO("n " << n);
    const auto summa = wafer::gemm(m, wafer::GemmAlgo::kSumma, n);
    const auto cannon = wafer::gemm(m, wafer::GemmAlgo::kCannon, n);
    const auto mesh = wafer::gemm(m, wafer::GemmAlgo::kMeshGemm, n);
    REQUIRE(summa.valid);
    REQUIRE(cannon.valid);
    REQUIRE(mesh.valid);
    CHECK(mesh.time.value() < summa.time.value());
    CHECK(mesh.time.value() < cannon.time.value());
    // The difference is the distance: MeshGEMM's messages travel at most 2 hops.
    CHECK(mesh.hop_latency.value() < cannon.hop_latency.value());
  }
  // A GPU cluster has no mesh.
  const Scenario gpu = parse_scenario("cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8}\n", "t.yaml", {}, test::presets());
  CHECK_THROWS_WITH(wafer::mesh_of(gpu.cluster), Contains("not a wafer-scale part"));
}
