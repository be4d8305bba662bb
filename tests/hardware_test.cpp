// Roofline and power/DVFS against hand-computed values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "core/error.hpp"
#include "engine/step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/plan.hpp"
#include "topology/spec.hpp"
#include "test_support.hpp"

using namespace wallsim;
using namespace wallsim::hardware;
using parallelism::Kernel;
using parallelism::KernelKind;

namespace {
const GpuModel::Options kFp8{.precision = GemmPrecision::kFp8Tensorwise};

GpuSpec gpu() {
  GpuSpec g;
  g.name = "test";
  g.bf16_dense = FlopRate::of(1000e12);
  g.fp8_dense = FlopRate::of(2000e12);
  g.memory_bandwidth = Bandwidth::of(4e12);
  g.tdp = Watts::of(700);
  g.idle_power = Watts::of(100);
  g.boost_clock = Frequency::of(2e9);
  g.base_clock = Frequency::of(1e9);
  g.gemm_efficiency = 0.8;
  g.attention_efficiency = 0.5;
  g.memory_efficiency = 0.5;
  g.kernel_overhead = Seconds::of(1e-6);
  return g;
}

/// A one-GPU scenario on preset `gpu` (its cluster.gpu is the preset as data/gpus.yaml gives it).
Scenario one_gpu(const std::string& gpu) {
  return parse_scenario("cluster: {gpu: " + gpu + ", nodes: 1, gpus_per_node: 1}\nmodel: llama3-8b\n"
                        "training: {seq_len: 8192, global_batch: 8}\n",
                        "t.yaml", {}, test::presets());
}

/// A measured GEMM table (data/kernels/*.csv): b, m, n, k and one TFLOP/s column per precision.
struct GemmRow {
  double b, m, n, k;
  std::vector<double> tflops;
};
std::vector<GemmRow> gemm_table(const std::string& rel) {
  std::ifstream in(test::source_path(rel));
  REQUIRE(in);
  std::vector<GemmRow> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line[0] == 'b') continue;
    std::istringstream row(line);
    GemmRow r{};
    char c = 0;
    row >> r.b >> c >> r.m >> c >> r.n >> c >> r.k;
    for (double t = 0; row >> c >> t;) r.tflops.push_back(t);
    REQUIRE(!r.tflops.empty());
    rows.push_back(r);
  }
  return rows;
}

/// The model's log error on a table's rows with at least one 64 x 64 tile per SM (the fitted
/// ones) and on the rest, for column `col` with inputs of `in_bytes`.
struct FitError {
  int rows = 0;
  double rms = 0, worst = 0, rest_rms = 0;
};
FitError fit_error(const GpuModel& gpu, const std::vector<GemmRow>& table, int sms, std::size_t col, double in_bytes) {
  FitError e;
  double sum = 0, rest = 0;
  int others = 0;
  for (const auto& r : table) {
    const double flops = 2 * r.b * r.m * r.n * r.k;
    const Kernel g{KernelKind::kGemm, "g", Flops::of(flops), Bytes::of(r.b * (in_bytes * (r.m * r.k + r.k * r.n) + 2 * r.m * r.n)),
                   r.m, r.n, r.k, r.b};
    const double err = std::log(flops / gpu.time(g).value() / 1e12 / r.tflops.at(col));
    if (r.b * r.m * r.n >= sms * 64.0 * 64.0) {
      sum += err * err;
      e.worst = std::max(e.worst, std::abs(err));
      ++e.rows;
    } else {
      rest += err * err;
      ++others;
    }
  }
  e.rms = std::sqrt(sum / std::max(1, e.rows));
  e.rest_rms = std::sqrt(rest / std::max(1, others));
  return e;
}
/// The clock of preset `gpu` under a power cap of `cap` watts, over its clock at the TDP.
double capped_clock_ratio(const std::string& gpu, double cap) {
  const Scenario s = one_gpu(gpu);
  return GpuModel(s.cluster.gpu, {.power_cap = Watts::of(cap)}).clock().value() / GpuModel(s.cluster.gpu).clock().value();
}

}  // namespace

TEST_CASE("hardware roofline: compute-bound, memory-bound, per-kind efficiency", "[hardware]") {
  const GpuModel m(gpu());
  // 8e12 FLOPs at 0.8 x 1000 TFLOP/s = 10 ms (+1 us); its 1 GB at 2 TB/s effective is 0.5 ms.
  CHECK(m.time({KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)}).value() == Approx(10e-3 + 1e-6));
  // Attention at 0.5 x peak: 5e12 FLOPs -> 10 ms.
  CHECK(m.time({KernelKind::kAttention, "a", Flops::of(5e12), Bytes::of(1e6)}).value() == Approx(10e-3 + 1e-6));
  // Element-wise is memory-bound: 4 GB at 0.5 x 4 TB/s = 2 ms.
  CHECK(m.time({KernelKind::kElementwise, "e", Flops::of(1e9), Bytes::of(4e9)}).value() == Approx(2e-3 + 1e-6));
  // FP8 doubles the GEMM roof.
  const GpuModel f8(gpu(), kFp8);
  CHECK(f8.time({KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)}).value() == Approx(5e-3 + 1e-6));
}

TEST_CASE("hardware tile and wave quantization by shape", "[hardware]") {
  GpuSpec g = gpu();
  g.sms = 108;
  g.gemm_tile_rows = 256;
  g.gemm_tile_cols = 128;
  g.attention_block = 128;
  const GpuModel m(g);
  auto gemm = [](double rows, double cols, double batch = 1.0) {
    return Kernel{KernelKind::kGemm, "g", Flops::of(2.0 * rows * cols * 4096 * batch), Bytes::of(1.0), rows, cols, 4096, batch};
  };
  // NVIDIA's example: 1792 x 1792 is 7 x 14 = 98 tiles of 256 x 128, one wave on 108 SMs.
  CHECK(m.fill(gemm(1792, 1792)) == Approx(98.0 / 108.0));
  // 109 whole tiles need two waves; a 257-row output pads to 2 tiles of rows (either way round).
  CHECK(m.fill(gemm(256, 128, 109)) == Approx(109.0 / 216.0));
  CHECK(m.fill(gemm(257, 128)) == Approx(257.0 * 128 / (256 * 128) / 108.0));
  // Exactly 108 x k tiles fill every wave.
  CHECK(m.fill(gemm(256 * 108, 128 * 3)) == Approx(1.0));
  // Time scales as 1 / fill: 98/108 of the slots at work.
  const Kernel k = gemm(1792, 1792);
  CHECK(m.time(k).value() == Approx(k.flops.value() / (1000e12 * 0.8 * 98.0 / 108.0) + 1e-6));
  // Attention: 4096 queries in blocks of 128 over 27 sequence-heads = 864 blocks = 8 waves.
  const Kernel a{KernelKind::kAttention, "a", Flops::of(1e12), Bytes::of(1.0), 4096, 128, 128, 27};
  CHECK(m.fill(a) == Approx(1.0));
  const Kernel a2{KernelKind::kAttention, "a", Flops::of(1e12), Bytes::of(1.0), 4096, 128, 128, 28};
  CHECK(m.fill(a2) == Approx(28.0 * 32 / (9.0 * 108)));
  // No SM count: no quantization.
  CHECK(GpuModel(gpu()).fill(gemm(257, 128)) == 1.0);
  // Smaller tiles: 1024 x 1024 is 32 tiles of 256 x 128 (32/108 of one wave). With a tile
  // intensity of 40, a tile of r x c runs at (1 + 40/85.33) / (1 + 40 / (r c / (r + c))) of the
  // largest's rate: 128 x 128 (64 tiles, one wave of 64/108, at 1.46875/1.625) beats 64 x 64
  // (256 tiles in 3 waves, 256/324, at 1.46875/2.25), 128 x 64 and 256 x 64.
  CHECK(m.fill(gemm(1024, 1024)) == Approx(32.0 / 108.0));
  g.gemm_tile_intensity = 40;
  const GpuModel small(g);
  const double top = 256.0 * 128 / 384;
  CHECK(small.fill(gemm(1024, 1024)) == Approx(64.0 / 108.0 * (1 + 40 / top) / (1 + 40 / 64.0)));
  // A shape the largest tile fills best keeps it.
  CHECK(small.fill(gemm(256 * 108, 128 * 3)) == Approx(1.0));
  // Backward GEMMs transpose the shape: the weight gradient's output is depth x cols.
  const Kernel w = parallelism::weight_gradient(gemm(100, 1792));
  CHECK(w.rows == 4096);
  CHECK(w.cols == 1792);
  CHECK(w.depth == 100);
  const Kernel d = parallelism::data_gradient(gemm(100, 1792));
  CHECK(d.rows == 100);
  CHECK(d.cols == 4096);
  CHECK(d.flops.value() == gemm(100, 1792).flops.value());
}

TEST_CASE("hardware power cap lowers the clock as the cube root of the dynamic headroom", "[hardware]") {
  const GpuModel free(gpu());
  CHECK(free.clock().value() == Approx(2e9));
  CHECK(free.busy_power().value() == Approx(700));
  // Cap 400 W: dynamic budget 300 W of 600 W -> f = 2 GHz x cbrt(0.5) = 1.587 GHz.
  const GpuModel capped(gpu(), {.power_cap = Watts::of(400)});
  CHECK(capped.clock().value() == Approx(2e9 * std::cbrt(0.5)));
  CHECK(capped.busy_power().value() == Approx(400));
  const Kernel g{KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e6)};
  CHECK(capped.time(g).value() == Approx(10e-3 / std::cbrt(0.5) + 1e-6));
  // At the lowest cap it can hold, 100 + 600 x (1/2)^3 = 175 W, the clock is the base clock.
  CHECK(GpuModel(gpu(), {.power_cap = Watts::of(175)}).clock().value() == Approx(1e9));
  // A reserve for traffic comes off the cores' share: 400 W less 50 W leaves 250 W of 600 W.
  const GpuModel reserved(gpu(), {.power_cap = Watts::of(400), .reserve = Watts::of(50)});
  CHECK(reserved.clock().value() == Approx(2e9 * std::cbrt(250.0 / 600.0)));
  CHECK(reserved.busy_power().value() == Approx(350));
  // ... and where it would leave the cores below the base clock's 175 W, the cap cannot be held.
  CHECK_THROWS_WITH(GpuModel(gpu(), {.power_cap = Watts::of(200), .reserve = Watts::of(30)}), Catch::Matchers::Contains("--power-cap") &&
                                                                              Catch::Matchers::Contains("base clock"));
}

TEST_CASE("hardware a power cap on the A100: the cube law against NVIDIA's MLPerf MaxQ runs", "[hardware]") {
  // NVIDIA's MLPerf Inference v2.0 DGX A100 (A100 SXM 80 GB, 400 W) BERT Offline runs at the
  // default limit and with a per-GPU power_limit, nothing else changed (mlcommons/
  // inference_results_v2.0 @ e1f8956, closed/NVIDIA: configs/bert/Offline/__init__.py and the
  // runs' mlperf_log_summary.txt): INT8 at 300 W 24,793.7 against 27,971.4 samples/s (0.886),
  // FP16 at 275 W 11,402.8 against 14,052.2 (0.811); a large-batch GEMM-bound transformer, so
  // its throughput goes as the clock. The model (P = idle + dynamic x (f/f_boost)^3, the preset's
  // 50 W idle [A]) gives 0.894 and 0.863: within 1 % at 300 W, 6.4 % optimistic at 275 W (a
  // check, nothing fitted; docs/calibration-sources-power-caps.md, fourth pass).
  auto ratio = [](double cap) { return capped_clock_ratio("a100-sxm-80gb", cap); };
  CHECK(ratio(300) == Approx(0.886).margin(0.01));
  CHECK(ratio(275) == Approx(0.811).margin(0.06));
  CHECK(ratio(275) > 0.811);  // the side it errs on
}

TEST_CASE("hardware a power cap on the H100: the cube law against NVIDIA's MLPerf MaxQ runs", "[hardware]") {
  // NVIDIA's MLPerf Inference v4.0 DGX H100 (H100 SXM 80 GB, 700 W) Offline runs at the default
  // limit and with a per-GPU power_limit (MaxQ), nothing else changed (mlcommons/
  // inference_results_v4.0, closed/NVIDIA: configs/llama2-70b/Offline/__init__.py @ 8121a81 and
  // configs/gptj/Offline/__init__.py @ 3c4a1cf, the runs' mlperf_log_summary.txt and GPT-J
  // MaxP's mlperf_log_detail.txt @ 3c4a1cf): Llama 2 70B (FP8, TP 2, batch 896) at 450 W
  // 17,561.6 against 21,805.8 tokens/s (0.805); GPT-J (FP8, batch 192) at 350 W 178.896 against
  // 239.895 samples/s (0.746). The cube law with the preset's idle power gives 0.842 and 0.759:
  // 4.6 % and 1.7 % optimistic, the side it errs on for the A100 too (a check, nothing fitted;
  // docs/calibration-sources-power-caps.md, fifth pass).
  auto ratio = [](double cap) { return capped_clock_ratio("h100-sxm", cap); };
  CHECK(ratio(450) == Approx(0.805).margin(0.05));
  CHECK(ratio(350) == Approx(0.746).margin(0.03));
  CHECK(ratio(450) > 0.805);
  CHECK(ratio(350) > 0.746);
}

TEST_CASE("hardware a power cap out of the GPU's range is bad input naming the flag", "[hardware]") {
  using Catch::Matchers::Contains;
  // Test GPU: idle 100 W, TDP 700 W, base 1 GHz of boost 2 GHz: at the base clock it draws
  // 100 + 600 x (1/2)^3 = 175 W, the lowest cap it can hold.
  const GpuSpec g = gpu();
  SECTION("at or below idle (0 W included: it is not 'no cap')") {
    for (double w : {0.0, 10.0, 100.0}) {
      INFO(w);
      CHECK_THROWS_WITH(check_power_cap(g, Watts::of(w), "--power-cap"), Contains("--power-cap") && Contains("idle power 100 W"));
      CHECK_THROWS_AS(GpuModel(g, {.power_cap = Watts::of(w == 0.0 ? -1.0 : w)}), Error);
    }
  }
  SECTION("below the base clock's draw, naming it") {
    CHECK_THROWS_WITH(check_power_cap(g, Watts::of(174), "--vary power_cap"),
                      Contains("--vary power_cap") && Contains("175 W") && Contains("base clock"));
    CHECK_NOTHROW(check_power_cap(g, Watts::of(175), "--power-cap"));
  }
  SECTION("a minimum power limit above the base clock's draw is the floor") {
    GpuSpec h = g;
    h.min_power_limit = Watts::of(250);
    CHECK_THROWS_WITH(check_power_cap(h, Watts::of(249), "--power-cap"), Contains("250 W") && Contains("minimum power limit"));
    CHECK_NOTHROW(check_power_cap(h, Watts::of(250), "--power-cap"));
  }
  SECTION("above the TDP, its highest limit") {
    CHECK_THROWS_WITH(check_power_cap(g, Watts::of(701), "--power-cap"), Contains("TDP 700 W"));
    CHECK_NOTHROW(check_power_cap(g, Watts::of(700), "--power-cap"));
  }
  SECTION("without base clock or minimum limit, only caps at the full-load draw") {
    GpuSpec h = g;
    h.base_clock = Frequency{};
    CHECK_THROWS_WITH(check_power_cap(h, Watts::of(600), "--power-cap"), Contains("neither base_clock nor min_power_limit"));
    CHECK_NOTHROW(check_power_cap(h, Watts::of(700), "--power-cap"));
  }
  SECTION("a wafer has no DVFS model: a cap does not apply") {
    GpuSpec w = g;
    w.cores = 900000;
    CHECK_THROWS_WITH(check_power_cap(w, Watts::of(10e3), "--power-cap"), Contains("does not apply to the wafer step"));
  }
  SECTION("the H100 preset's floor is its 200 W minimum limit (data/gpus.yaml)") {
    const Scenario s = parse_scenario("cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8}\nmodel: llama3-8b\n"
                                      "training: {seq_len: 8192, global_batch: 8}\n",
                                      "t.yaml", {}, test::presets());
    CHECK_THROWS_WITH(check_power_cap(s.cluster.gpu, Watts::of(199), "--power-cap"), Contains("200 W"));
    CHECK_NOTHROW(check_power_cap(s.cluster.gpu, Watts::of(200), "--power-cap"));
  }
  SECTION("B200 and GB200 hold caps down to the 200 W nvidia-smi reports on their nodes, up to 1,000 and 1,200 W") {
    for (auto [name, tdp] : {std::pair{"b200", 1000.0}, std::pair{"gb200", 1200.0}}) {
      const Scenario s = parse_scenario(std::string("cluster: {gpu: ") + name + ", nodes: 1, gpus_per_node: 4}\nmodel: llama3-8b\n"
                                        "training: {seq_len: 8192, global_batch: 4}\n",
                                        "t.yaml", {}, test::presets());
      CHECK_THROWS_WITH(check_power_cap(s.cluster.gpu, Watts::of(199), "--power-cap"), Contains("200 W") && Contains("min_power_limit"));
      CHECK_NOTHROW(check_power_cap(s.cluster.gpu, Watts::of(200), "--power-cap"));
      CHECK_NOTHROW(check_power_cap(s.cluster.gpu, Watts::of(tdp), "--power-cap"));
      CHECK_THROWS_WITH(check_power_cap(s.cluster.gpu, Watts::of(tdp + 1.0), "--power-cap"), Contains("TDP"));
    }
  }
}

TEST_CASE("hardware the traffic's reserve keeps a GPU's average draw within its cap", "[hardware]") {
  const GpuModel m(gpu(), {.power_cap = Watts::of(400)});  // busy 400 W, idle 100 W
  // 10 s step, 8 s computing, 80 J of traffic: 1000 + 300 x 8 + 80 = 3480 J, 348 W: fits.
  CHECK(m.reserve_for(Seconds::of(10), Seconds::of(8), Joules::of(3480)).value() == 0.0);
  // Computing throughout with 200 J of traffic: 4200 J over 10 s is 420 W > 400 W: the traffic
  // drew 200 J / 10 s = 20 W while computing, which the cap must keep.
  const Watts r = m.reserve_for(Seconds::of(10), Seconds::of(10), Joules::of(4200));
  CHECK(r.value() == Approx(20));
  // With it the cores get 400 - 20 - 100 = 280 W of 600; the same 200 J over a longer time
  // computing averages at most the cap: 100 + 280 + 200 / 10 = 400 W at the old busy time.
  const GpuModel held(gpu(), {.power_cap = Watts::of(400), .reserve = r});
  CHECK(held.busy_power().value() + r.value() == Approx(400));
}

TEST_CASE("hardware missing efficiencies are bad input naming the key", "[hardware]") {
  GpuSpec g = gpu();
  g.gemm_efficiency = 0;
  CHECK_THROWS_WITH(GpuModel(g), Catch::Matchers::Contains("cluster.gpu.gemm_efficiency"));
  // Every missing field in one error, idle power among them (not silently 0 W).
  g.memory_efficiency = 0;
  g.idle_power = Watts{};
  CHECK_THROWS_WITH(GpuModel(g), Catch::Matchers::Contains("cluster.gpu.gemm_efficiency") &&
                                                     Catch::Matchers::Contains("cluster.gpu.memory_efficiency") &&
                                                     Catch::Matchers::Contains("cluster.gpu.idle_power"));
}

TEST_CASE("hardware an FP8 GEMM's speed-up over BF16 is the measured one, not the peaks' 2x", "[hardware]") {
  // A tile's fixed prologue and epilogue are gemm_depth_overhead steps of reduction at the bf16
  // rate, twice as many at FP8's twice the peak: with a 100-step overhead, a depth-100 GEMM runs
  // at 100 / 200 of its rate in BF16 and 100 / 300 in FP8, so FP8 is 2 x (1/3) / (1/2) = 1.333x
  // as fast (no FP8 ratio in the test GPU), not 2x.
  GpuSpec g = gpu();
  g.gemm_depth_overhead = 100;
  const Kernel shallow{KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9), 0.0, 0.0, 100.0};
  CHECK((GpuModel(g).time(shallow).value() - 1e-6) / (GpuModel(g, kFp8).time(shallow).value() - 1e-6) == Approx(4.0 / 3.0));
  // Without a depth or a measured ratio, FP8 keeps BF16's efficiency: twice as fast on twice the peak.
  const GpuModel b(gpu()), f(gpu(), kFp8);
  const Kernel k{KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)};
  CHECK((b.time(k).value() - 1e-6) / (f.time(k).value() - 1e-6) == Approx(2.0));
  // The presets: 8192 cubed runs 2 x fp8_efficiency_ratio x (8192 + 128.4) / (8192 + 256.8) as
  // fast in FP8 (1.858 on the H100, 1.841 on the H200); NVIDIA's TensorRT-LLM sweeps measure
  // 1552.8 / 782.7 = 1.984 and 1510.4 / 806.2 = 1.873 at that shape (data/kernels/*-trtllm-gemm.csv):
  // the ratio is fitted on the median of all 320 shapes, where the small ones gain less.
  for (const auto& [name, ratio, measured, bias] :
       {std::tuple{"h100-sxm", 0.9434, 1552.8 / 782.7, 0.936}, std::tuple{"h200-sxm", 0.9347, 1510.4 / 806.2, 0.983}}) {
    INFO(name);
    const Scenario s = parse_scenario(std::string("cluster: {gpu: ") + name + ", nodes: 1, gpus_per_node: 8}\n"
                                      "model: llama3-8b\ntraining: {seq_len: 8192, global_batch: 8}\n",
                                      "t.yaml", {}, test::presets());
    const GpuModel bf16(s.cluster.gpu), fp8(s.cluster.gpu, kFp8);
    const double n = 8192;
    const Kernel big{KernelKind::kGemm, "g", Flops::of(2 * n * n * n), Bytes::of(3 * 2 * n * n), n, n, n};
    const double speedup = (bf16.time(big) - s.cluster.gpu.kernel_overhead).value() / (fp8.time(big) - s.cluster.gpu.kernel_overhead).value();
    CHECK(speedup == Approx(2 * ratio * (n + 128.4) / (n + 2 * 128.4)).epsilon(1e-4));
    CHECK(speedup / measured == Approx(bias).margin(0.005));
  }
}

TEST_CASE("hardware a step's average GPU power never exceeds the cap (HBM and link traffic included)",
          "[hardware][engine]") {
  // Llama 3 8B on 32 H100 is compute-bound (about 97 % of the step computing): at a binding cap
  // the cores alone draw the cap while computing, and the HBM and link traffic on top would take
  // the average above it (403.9 W under a 400 W cap, 206.8 W under 200 W, without the reserve).
  const Scenario s = load_scenario(test::source_path("data/scenarios/llama3-8b-32xh100.yaml"), {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const topology::Topology t = topology::build_step_fabric(s.cluster);
  const auto network = collectives::NetworkModel::build("analytic", "--network");
  for (double cap : {0.0, 600.0, 400.0, 200.0}) {
    INFO("cap " << cap << " W");
    const auto r = engine::simulate_step(s, plan, t, engine::step_options(network.get(), Watts::of(cap)));
    CHECK(std::isfinite(r.step_time.value()));
    CHECK(r.gpu_avg_power.value() <= (cap > 0.0 ? cap : 700.0));
  }
}

TEST_CASE("hardware the blockwise FP8 recipe runs GEMMs at its own measured ratios, weight gradients at theirs", "[hardware]") {
  GpuSpec g = gpu();  // 2,000 TFLOP/s FP8, GEMMs at 0.8, 1 us per kernel, no tiles (fill 1)
  g.fp8_efficiency_ratio = 0.9;
  g.fp8_blockwise_ratio = 0.75;
  g.fp8_blockwise_wgrad_ratio = 0.5;
  const GpuModel tensorwise(g, kFp8), blockwise(g, {.precision = GemmPrecision::kFp8Blockwise}), bf16(g);
  const Kernel f{KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)};
  const Kernel w = parallelism::weight_gradient(f), d = parallelism::data_gradient(f);
  CHECK(w.wgrad);
  CHECK(!d.wgrad);
  CHECK(!f.wgrad);
  // A GEMM that stays in bf16 (router, LM head, unfused core attention) takes the BF16 peak and
  // efficiency under any FP8 recipe.
  Kernel head = f;
  head.bf16_only = true;
  CHECK(tensorwise.time(head).value() == Approx(8e12 / (1000e12 * 0.8) + 1e-6));
  CHECK(blockwise.time(parallelism::weight_gradient(head)).value() == Approx(8e12 / (1000e12 * 0.8) + 1e-6));
  // Unfused attention's batched GEMMs have two activation operands: no weight gradient among them.
  Kernel scores = f;
  scores.core_attention = true;
  CHECK(!parallelism::weight_gradient(scores).wgrad);
  CHECK(tensorwise.time(f).value() == Approx(8e12 / (2000e12 * 0.8 * 0.9) + 1e-6));
  CHECK(tensorwise.time(w).value() == Approx(8e12 / (2000e12 * 0.8 * 0.9) + 1e-6));
  CHECK(blockwise.time(f).value() == Approx(8e12 / (2000e12 * 0.8 * 0.75) + 1e-6));
  CHECK(blockwise.time(d).value() == Approx(8e12 / (2000e12 * 0.8 * 0.75) + 1e-6));
  CHECK(blockwise.time(w).value() == Approx(8e12 / (2000e12 * 0.8 * 0.5) + 1e-6));
  // BF16 GEMMs take no FP8 ratio, whatever the recipe.
  CHECK(bf16.time(w).value() == Approx(8e12 / (1000e12 * 0.8) + 1e-6));
  // A GPU without the recipe's measured ratios: bad input naming the key and both fields.
  g.fp8_blockwise_wgrad_ratio = 0.0;
  CHECK_THROWS_WITH(GpuModel(g, {.precision = GemmPrecision::kFp8Blockwise}),
                    Catch::Matchers::Contains("training.fp8_recipe: blockwise: 'test' has no measured rate") &&
                        Catch::Matchers::Contains("cluster.gpu.fp8_blockwise_wgrad_ratio") &&
                        !Catch::Matchers::Contains("cluster.gpu.fp8_blockwise_ratio,"));
  CHECK_NOTHROW(GpuModel(g, kFp8));  // the tensorwise recipe needs no blockwise ratios
  // FP8 on a GPU with no FP8 peak: bad input naming the key, not bf16 rates in silence.
  g.fp8_dense = FlopRate{};
  CHECK_THROWS_WITH(GpuModel(g, kFp8), Catch::Matchers::Contains("training.precision") && Catch::Matchers::Contains("fp8_dense"));
  CHECK_NOTHROW(GpuModel(g));
}

TEST_CASE("hardware the B200 model reproduces XLA's measured B200 table, BF16 and FP8 for the same shapes, and GB200 takes it",
          "[hardware]") {
  // data/gpus.yaml b200: gemm_efficiency, gemm_depth_overhead, kernel_overhead and
  // gemm_tile_intensity fitted on the BF16 rows of data/kernels/b200-gemm.csv with a 64 x 64
  // tile per SM (280 of 375): rms 4.8 %, worst +26 %. fp8_efficiency_ratio is fitted on NVIDIA's
  // TensorRT-LLM sweep (below); the table's same-shape FP8 rows check it.
  const Scenario s = one_gpu("b200");
  const GpuModel bf16(s.cluster.gpu), fp8(s.cluster.gpu, kFp8);
  const auto table = gemm_table("data/kernels/b200-gemm.csv");
  REQUIRE(table.size() == 375);
  const auto b = fit_error(bf16, table, 148, 0, 2.0);
  CHECK(b.rows == 280);
  CHECK(b.rms < 0.049);
  CHECK(b.worst < 0.24);  // in log: +26 %
  const auto f = fit_error(fp8, table, 148, 1, 1.0);
  CAPTURE(f.rms);
  CHECK(f.rms < 0.085);
  // A large GEMM's FP8 speed-up: the table measures 3,279.7 / 1,670.5 = 1.963 at 4096 cubed, b = 4;
  // the model gives 2 x 0.9751 x (4096 + 156.1) / (4096 + 312.2) = 1.881 of the compute, 1.857 with
  // the memory and overheads: 5.4 % low (TensorRT-LLM's sweep measures 2.07 at that shape, b = 1).
  const double n = 4096;
  const Kernel g16{KernelKind::kGemm, "g", Flops::of(8 * n * n * n), Bytes::of(4 * 3 * 2 * n * n), n, n, n, 4};
  Kernel g8 = g16;
  g8.bytes = Bytes::of(4 * (2 * n * n + 2 * n * n));
  CHECK(bf16.time(g16).value() / fp8.time(g8).value() / (3279.7 / 1670.5) == Approx(0.946).margin(0.003));
  CHECK(hardware::missing_fields(s.cluster.gpu).empty());
  // GB200 takes the B200's fit at its sustained clock: the B200's 1,856 MHz times the cube root
  // of their dynamic power at their limits, (1,200 - 164) / (1,000 - 138) W: 1.063x the B200's
  // rate, shape for shape, not the peaks' 2500/2250. NVIDIA's sweeps measure 1.066x for BF16 in
  // the median (below).
  const Scenario g = one_gpu("gb200");
  const GpuModel gb(g.cluster.gpu);
  const GpuSpec &bs = s.cluster.gpu, &gs = g.cluster.gpu;
  const double cube = std::cbrt((gs.tdp - gs.idle_power).value() / (bs.tdp - bs.idle_power).value());
  CHECK(cube == Approx(std::cbrt((1200.0 - 164.0) / (1000.0 - 138.0))));  // the presets as sourced
  CHECK(gb.clock().value() == Approx(1856e6 * cube).epsilon(2e-4));  // 1,973 MHz, rounded in data/gpus.yaml
  const Kernel big{KernelKind::kGemm, "g", Flops::of(2 * 8192.0 * 8192 * 8192), Bytes::of(3 * 2 * 8192.0 * 8192), 8192, 8192, 8192};
  CHECK((bf16.time(big) - s.cluster.gpu.kernel_overhead).value() / (gb.time(big) - g.cluster.gpu.kernel_overhead).value() ==
        Approx(cube).epsilon(2e-4));
  // The check: the GB200 over the B200, shape for shape, in TensorRT-LLM's BF16 sweeps.
  const auto gb_table = gemm_table("data/kernels/gb200-trtllm-gemm.csv"), b_table = gemm_table("data/kernels/b200-trtllm-gemm.csv");
  REQUIRE(gb_table.size() == b_table.size());
  std::vector<double> ratios;
  for (std::size_t x = 0; x < gb_table.size(); ++x) {
    REQUIRE((gb_table[x].m == b_table[x].m && gb_table[x].n == b_table[x].n && gb_table[x].k == b_table[x].k));
    ratios.push_back(gb_table[x].tflops.at(0) / b_table[x].tflops.at(0));
  }
  std::sort(ratios.begin(), ratios.end());
  const double measured = 0.5 * (ratios[ratios.size() / 2 - 1] + ratios[ratios.size() / 2]);
  CAPTURE(measured);
  CHECK(cube == Approx(measured).epsilon(0.02));
  CHECK(std::abs(2500.0 / 2250.0 - measured) > 2.0 * std::abs(cube - measured));  // the peaks' ratio is further off
  CHECK(hardware::missing_fields(g.cluster.gpu).empty());
}

TEST_CASE("hardware the H100 PCIe streams at its measured STREAM triad rate", "[hardware]") {
  // data/gpus.yaml h100-pcie: memory_efficiency from gpu-stream's best triad on an H100 PCIe,
  // 1,832 GB/s of 2,039: a 1 GiB triad (3 loads, 1 store) moves at that rate, within 0.5 %,
  // once the kernel overhead is off.
  const Scenario s = parse_scenario("cluster: {gpu: h100-pcie, nodes: 1, gpus_per_node: 2, scale_up: {bandwidth: 300 GB/s, latency: 1 us}}\n"
                                    "model: llama3-8b\ntraining: {seq_len: 8192, global_batch: 8}\n",
                                    "t.yaml", {}, test::presets());
  const GpuModel g(s.cluster.gpu);
  const double bytes = 4.0 * (1 << 30);
  const Kernel triad{KernelKind::kElementwise, "triad", Flops::of(2.0 * (1 << 30) / 8), Bytes::of(bytes)};
  CHECK(bytes / (g.time(triad) - s.cluster.gpu.kernel_overhead).value() / 1e9 == Approx(1832.0).epsilon(0.005));
  CHECK(hardware::missing_fields(s.cluster.gpu).empty());
}

TEST_CASE("hardware the H100 GEMM model reproduces XLA's measured sm_90 table and MAMF's best matmul", "[hardware]") {
  // data/gpus.yaml h100-sxm: gemm_efficiency, gemm_depth_overhead, kernel_overhead and
  // gemm_tile_intensity fitted on the rows of data/kernels/h100-sxm-bf16-gemm.csv with a 64 x 64
  // tile per SM (280 of 375): rms 6.3 %, worst -19.9 %, as its source field states. The smaller
  // ones (split-K territory, not modelled) stay within 10 % rms.
  const Scenario s = one_gpu("h100-sxm");
  const GpuModel gpu(s.cluster.gpu);
  const auto table = gemm_table("data/kernels/h100-sxm-bf16-gemm.csv");
  REQUIRE(table.size() == 375);
  const auto e = fit_error(gpu, table, 132, 0, 2.0);
  CHECK(e.rows == 280);
  CHECK(e.rms < 0.063);
  CHECK(e.worst < 0.23);  // in log: -19.9 %
  CHECK(e.rest_rms < 0.10);
  // Not fitted: MAMF's best BF16 matmul on an H100 SXM, 794.5 TFLOP/s at 2048 x 2048 x 13312.
  const double m = 2048, n = 2048, k = 13312;
  const Kernel g{KernelKind::kGemm, "g", Flops::of(2 * m * n * k), Bytes::of(2 * (m * k + k * n + m * n)), m, n, k};
  CHECK(2 * m * n * k / gpu.time(g).value() / 1e12 == Approx(794.5).epsilon(0.04));
}

TEST_CASE("hardware the A100 GEMM model reproduces cuBLAS timed back to back, and LLMCompass's single calls check it",
          "[hardware]") {
  // data/gpus.yaml a100-sxm-80gb: gemm_efficiency, kernel_overhead and gemm_tile_intensity
  // fitted (gemm_depth_overhead held at 128) on GEMMs timed while the GPU runs call after call:
  // the rows of data/kernels/a100-fp16-gemm.csv with a 64 x 64 tile per SM (20 of 24) and MAMF's
  // best (271.2 TFLOP/s at 1024 x 10240 x 5120): worst +22.6 %, as its source field states.
  const Scenario s = one_gpu("a100-sxm-80gb");
  const GpuModel gpu(s.cluster.gpu);
  const auto curve = gemm_table("data/kernels/a100-fp16-gemm.csv");
  REQUIRE(curve.size() == 24);
  const auto e = fit_error(gpu, curve, 108, 0, 2.0);
  CHECK(e.rows == 20);
  CHECK(e.rms < 0.073);
  CHECK(e.worst < 0.21);  // in log: +22.6 %
  auto tflops = [&](double m, double n, double k) {
    const Kernel g{KernelKind::kGemm, "g", Flops::of(2 * m * n * k), Bytes::of(2 * (m * k + k * n + m * n)), m, n, k};
    return 2 * m * n * k / gpu.time(g).value() / 1e12;
  };
  CHECK(tflops(1024, 10240, 5120) == Approx(271.2).epsilon(0.01));
  // Not fitted: LLMCompass's BF16 sweeps, each call timed alone from the host (launch and sync
  // included; the GPU idle between calls), at the shapes whose calls last 0.28 ms or more (m of
  // 256 or more at n = k = 12288; m = 8192 and n = k of 2048 or more), where that fixed host
  // cost stays a few percent: within 3 %.
  int checked = 0;
  for (const auto& r : gemm_table("data/kernels/a100-bf16-gemm.csv")) {
    if ((r.n == 12288 && r.k == 12288 && r.m >= 256) || (r.m == 8192 && r.n == r.k && r.n >= 2048)) {
      INFO(r.m << " x " << r.n << " x " << r.k);
      CHECK(tflops(r.m, r.n, r.k) == Approx(r.tflops.at(0)).epsilon(0.03));
      ++checked;
    }
  }
  CHECK(checked == 13);
}

TEST_CASE("hardware a fused norm's backward streams at norm_backward_efficiency, every other element-wise pass at the triad's",
          "[hardware]") {
  GpuSpec g = gpu();  // 4 TB/s of HBM, memory_efficiency 0.5, 1 us per kernel
  g.norm_backward_efficiency = 0.25;
  const GpuModel m(g);
  const Scenario s = one_gpu("h100-sxm");
  parallelism::Shard sh;
  sh.seq_len = 4096;
  int norms = 0, others = 0;
  for (const auto& k : parallelism::layer_forward(*s.model, 0, sh)) {
    if (k.kind != KernelKind::kElementwise) continue;
    const Kernel b = parallelism::elementwise_backward(k);
    const double bw = 4e12;
    // Forward: the triad's 0.5; backward of a norm 0.25; of anything else 0.5.
    CHECK(m.time(k).value() == Approx(k.bytes.value() / (bw * 0.5) + 1e-6));
    CHECK(m.time(b).value() == Approx(b.bytes.value() / (bw * (k.norm ? 0.25 : 0.5)) + 1e-6));
    (k.norm ? norms : others) += 1;
  }
  CHECK(norms == 2);  // the input norm and the residual + post-attention norm (Megatron's fused add)
  CHECK(others >= 2);
  // Unset: the triad's.
  g.norm_backward_efficiency = 0.0;
  const GpuModel plain(g);
  Kernel n{KernelKind::kElementwise, "norm", Flops::of(1.0), Bytes::of(3e9)};
  n.norm = true;
  n.backward = true;
  CHECK(plain.time(n).value() == Approx(3e9 / (4e12 * 0.5) + 1e-6));
  // The H100 preset's figure is the median of Liger-Kernel's three measured norm backwards: it
  // gives liger's LayerNorm backward row (fp32, 4096 x 16384: 805.3 MB in 0.5776 ms) within 1 %.
  const GpuModel h100(s.cluster.gpu);
  Kernel ln{KernelKind::kElementwise, "layernorm (backward)", Flops::of(4096.0 * 16384), Bytes::of(3 * 4 * 4096.0 * 16384)};
  ln.norm = true;
  ln.backward = true;
  CHECK(h100.time(ln).value() == Approx(0.5776e-3).epsilon(0.01));
}

TEST_CASE("hardware fused attention: the causal diagonal, a fixed cost per query block, FlashAttention's backward",
          "[hardware]") {
  GpuSpec g = gpu();
  g.sms = 108;
  g.attention_block = 128;
  g.attention_depth_overhead = 64;
  g.attention_backward_depth_overhead = 128;
  g.attention_backward_efficiency = 0.4;
  const GpuModel m(g);
  // 27 sequence-heads of 512 queries and keys: 4 query blocks each, 108 blocks, one full wave.
  const double flops = 1e12;
  parallelism::Kernel a{KernelKind::kAttention, "a", Flops::of(flops), Bytes::of(1.0), 512, 128, 128, 27};
  a.keys = 512;
  // Not causal: each query block loops over 4 key blocks (16 pairs per sequence-head) and pays
  // 64 keys = half a block: 16 useful pairs in 16 + 4 x 0.5 = 18.
  CHECK(m.fill(a) == Approx(16.0 / 18.0));
  CHECK(m.time(a).value() == Approx(flops / (1000e12 * 0.5 * 16.0 / 18.0) + 1e-6));
  // Causal: blocks up to the diagonal, 1 + 2 + 3 + 4 = 10 pairs computed for 8 useful (the
  // diagonal's are half masked), plus the same 2 of overhead.
  a.causal = true;
  CHECK(m.fill(a) == Approx(8.0 / 12.0));
  // Backward: five matmuls for the forward's two (FLOPs counted as twice the forward's, so
  // 1.25x more work), at the backward's efficiency 0.4 and its overhead of a whole block.
  a.causal = false;
  const parallelism::Kernel b = parallelism::attention_backward(a);
  CHECK(b.flops.value() == Approx(2.0 * flops));
  CHECK(b.bytes.value() == Approx(2.0));
  CHECK(m.fill(b) == Approx(16.0 / 20.0));
  CHECK(m.time(b).value() == Approx(1.25 * 2.0 * flops / (1000e12 * 0.4 * 16.0 / 20.0) + 1e-6));
  // Without a backward efficiency or overhead of its own, the backward takes the forward's.
  g.attention_backward_efficiency = 0.0;
  g.attention_backward_depth_overhead = 0.0;
  const GpuModel same(g);
  CHECK(same.time(b).value() == Approx(1.25 * 2.0 * flops / (1000e12 * 0.5 * 16.0 / 18.0) + 1e-6));
}

TEST_CASE("hardware fused attention's softmax: one exponential per score on the special-function units", "[hardware]") {
  GpuSpec g = gpu();  // 1,000 TFLOP/s, attention at 0.5, 2 GHz, 1 us per kernel, no blocks (fill 1)
  g.sms = 100;
  g.sfu_per_sm_clock = 16;  // 16 x 100 x 2 GHz = 3.2e12 exponentials per second
  // Head dim 64: 2.56e12 FLOPs are 2.56e12 / (2 x (64 + 64)) = 1e10 scores.
  parallelism::Kernel a{KernelKind::kAttention, "a", Flops::of(2.56e12), Bytes::of(1e6), 512, 64, 64, 27};
  const double matmul = 2.56e12 / (1000e12 * 0.5), softmax = 1e10 / 3.2e12;  // 5.12 ms, 3.125 ms
  CHECK(GpuModel(g).time(a).value() == Approx(matmul + softmax + 1e-6));
  // Beside the matmuls (FlashAttention-4's overlap): the longer one; half overlapped: half hidden.
  g.attention_softmax_overlap = 1.0;
  CHECK(GpuModel(g).time(a).value() == Approx(matmul + 1e-6));
  g.attention_softmax_overlap = 0.5;
  CHECK(GpuModel(g).time(a).value() == Approx(matmul + 0.5 * softmax + 1e-6));
  g.attention_softmax_overlap = 0.0;
  const GpuModel m(g);
  // The backward recomputes each score's exponential once: its FLOPs count twice the forward's,
  // its matmuls do 1.25x that, and the scores are the forward's 1e10.
  const parallelism::Kernel b = parallelism::attention_backward(a);
  CHECK(m.time(b).value() == Approx(1.25 * 2.0 * 2.56e12 / (1000e12 * 0.5) + softmax + 1e-6));
  // Head dim 128 over the same scores: twice the matmul work, the same exponentials, so a
  // smaller head dimension runs fewer FLOP/s: 2.56e12 / 8.245 ms against 5.12e12 / 13.365 ms.
  parallelism::Kernel wide = a;
  wide.flops = Flops::of(5.12e12);
  wide.cols = wide.depth = 128;
  CHECK(m.time(wide).value() == Approx(2.0 * matmul + softmax + 1e-6));
  CHECK(2.56e12 / (m.time(a).value() - 1e-6) < 0.85 * 5.12e12 / (m.time(wide).value() - 1e-6));
  // At half the clock (a sustained clock of half the boost) both the matmuls and the
  // exponentials take twice as long.
  g.sustained_clock = Frequency::of(1e9);
  CHECK(GpuModel(g).time(a).value() == Approx(2.0 * (matmul + softmax) + 1e-6));
  g.sustained_clock = Frequency{};
  // The rate needs the SM count and the clock.
  g.boost_clock = Frequency{};
  g.base_clock = Frequency{};
  CHECK_THROWS_WITH(GpuModel(g), Catch::Contains("cluster.gpu.sfu_per_sm_clock"));
}

TEST_CASE("hardware the MI300X and MI325X: one die at 750 W and 1,000 W, AMD's measured clocks and GEMMs",
          "[hardware]") {
  // AMD's 'Measuring Max-Achievable FLOPs, Part 2' (data/gpus.yaml, amd-maf2): a BF16 GEMM of
  // 4096 x 4864 x 32896 runs at 708 TFLOP/s with the MI300X's clock at 1,207 MHz (750 W) and at
  // 843 TFLOP/s with the MI325X's at 1,447 MHz (1,000 W); FP8 at 1,519 on the MI325X.
  auto spec = [](const char* name) { return one_gpu(name).cluster.gpu; };
  const GpuSpec mi300x = spec("mi300x"), mi325x = spec("mi325x");
  const double m = 4096, n = 4864, k = 32896;
  auto tflops = [&](const GpuModel& g, bool fp8) {
    const double in = fp8 ? 1.0 : 2.0;
    const Kernel gemm{KernelKind::kGemm, "g", Flops::of(2 * m * n * k), Bytes::of(in * (m * k + k * n) + 2 * m * n), m, n, k};
    return 2 * m * n * k / g.time(gemm).value() / 1e12;
  };
  const GpuModel a(mi300x), b(mi325x);
  CHECK(a.clock().value() == Approx(1207e6));
  CHECK(b.clock().value() == Approx(1447e6));
  CHECK(tflops(a, false) == Approx(708).epsilon(0.01));  // fitted here
  CHECK(tflops(b, false) == Approx(843).epsilon(0.02));  // the MI300X's efficiency at the MI325X's clock
  // FP8 over BF16 on the MI325X: the measured 1,519 / 843 per clock (1,464 against 1,447 MHz).
  const GpuModel b8(mi325x, kFp8);
  CHECK(tflops(b8, true) / tflops(b, false) == Approx(1519.0 / 843.0 * 1447.0 / 1464.0).epsilon(0.01));
  // A power cap lowers the clock as the sources say: the MI325X held to the MI300X's 750 W runs
  // the MI300X's measured 1,207 MHz within 8 % (the cube law gives 1,291: a die that draws
  // less at 750 W than the cube law carries down from 1,000 W). The MI325X's lowest cap is not
  // published; the test lets this one through.
  GpuSpec capped = mi325x;
  capped.min_power_limit = Watts::of(400);
  const GpuModel c(capped, {.power_cap = Watts::of(750)});
  CHECK(c.clock().value() == Approx(1207e6).epsilon(0.08));
  CHECK(c.clock().value() < b.clock().value());
  CHECK(c.busy_power().value() == Approx(750));
  // Without a floor, a cap below the full-load draw is refused with its reason.
  CHECK_THROWS_WITH(GpuModel(mi325x, {.power_cap = Watts::of(750)}), Catch::Matchers::Contains("how far DVFS can lower its clock is unknown"));
}

TEST_CASE("hardware a kernel beside a communication kernel runs on the SMs it leaves", "[hardware]") {
  // TP overlap (Kernel::sms_taken): a GEMM launched with an SM margin of k on a GPU of S SMs
  // takes (t - o) S / (S - k) + o, t its time on the whole GPU and o the launch overhead
  // (H100 SXM: 132 SMs; 24 taken by a reduce-scatter as NeMo's userbuffers configuration has it).
  const Scenario s = one_gpu("h100-sxm");
  const GpuModel gpu(s.cluster.gpu);
  parallelism::Kernel k{parallelism::KernelKind::kGemm, "g", Flops::of(2.0 * 8192 * 8192 * 8192),
                        Bytes::of(3.0 * 2 * 8192 * 8192), 8192, 8192, 8192};
  const double whole = gpu.time(k).value(), o = s.cluster.gpu.kernel_overhead.value();
  REQUIRE(s.cluster.gpu.sms == 132);
  k.sms_taken = 24;
  CHECK(gpu.time(k).value() == Approx((whole - o) * 132.0 / 108.0 + o).epsilon(1e-12));
  k.sms_taken = 132;
  CHECK_THROWS_WITH(gpu.time(k), Catch::StartsWith("cluster.gpu.sms"));
}

TEST_CASE("hardware torchtitan's 500 W H100 is the 700 W part's die under a 500 W limit", "[hardware]") {
  // The H100 SXM 96 GB draws at full load what the 700 W H100 SXM does (idle 78.8 W, 621.2 W
  // more at 1,830 MHz); its 500 W limit holds the cores to 421.2 W, so DVFS runs them at
  // 1,830 x (421.2 / 621.2)^(1/3) MHz. The 700 W part runs at its boost clock.
  auto spec = [](const char* name) { return one_gpu(name).cluster.gpu; };
  const GpuModel meta(spec("h100-sxm-96gb")), sxm(spec("h100-sxm"));
  CHECK(meta.clock().value() == Approx(1830e6 * std::cbrt((500.0 - 78.8) / (700.0 - 78.8))).epsilon(1e-9));
  CHECK(meta.busy_power().value() == Approx(500.0).epsilon(1e-9));
  CHECK(sxm.clock().value() == Approx(1830e6).epsilon(1e-12));
}

TEST_CASE("hardware GEMMs by shape in BF16 and FP8 on H100, H200, B200 and GB200 check against NVIDIA's TensorRT-LLM sweeps",
          "[hardware]") {
  // data/kernels/<gpu>-trtllm-gemm.csv: 320 training-sized shapes a GPU (m 1024-16384, n and k
  // 1024-16384), BF16 and FP8 per tensor (the GEMM alone), from NVIDIA's aiconfigurator. None is
  // fitted but each GPU's fp8_efficiency_ratio (below): H100 is fitted on XLA's sm_90 table (up
  // to 4096 a side), H200 takes the H100's fit, B200 is fitted on XLA's sm_100 table, GB200 takes
  // the B200's at its sustained clock. The targets: the model's bias (the median log error) within
  // 10 % and its rms within 20 % in each precision; as they stand (docs/calibration-sources-
  // kernels.md): H100 -3.1 % / 7.5 % BF16, -2.6 % / 9.2 % FP8; H200 -4.0 / 8.5, -3.6 / 8.1; B200
  // -6.5 / 16.1, -8.7 / 13.1; GB200 -7.0 / 17.6, -8.1 / 13.4.
  for (const char* gpu : {"h100-sxm", "h200-sxm", "b200", "gb200"}) {
    INFO(gpu);
    const Scenario s = one_gpu(gpu);
    const GpuModel bf16(s.cluster.gpu), fp8(s.cluster.gpu, kFp8);
    const auto table = gemm_table(std::string("data/kernels/") + gpu + "-trtllm-gemm.csv");
    REQUIRE(table.size() == 320);
    std::vector<double> e16, e8, speedup_model, speedup_measured;
    for (const auto& r : table) {
      const double flops = 2 * r.m * r.n * r.k;
      Kernel g{KernelKind::kGemm, "g", Flops::of(flops), Bytes::of(2 * (r.m * r.k + r.k * r.n) + 2 * r.m * r.n), r.m, r.n, r.k};
      const double t16 = bf16.time(g).value();
      g.bytes = Bytes::of(r.m * r.k + r.k * r.n + 2 * r.m * r.n);
      const double t8 = fp8.time(g).value();
      e16.push_back(std::log(flops / t16 / 1e12 / r.tflops.at(0)));
      e8.push_back(std::log(flops / t8 / 1e12 / r.tflops.at(1)));
      speedup_model.push_back(t16 / t8);
      speedup_measured.push_back(r.tflops.at(1) / r.tflops.at(0));
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return 0.5 * (v[(v.size() - 1) / 2] + v[v.size() / 2]);
    };
    auto rms = [](const std::vector<double>& v) {
      double ss = 0;
      for (double e : v) ss += e * e;
      return std::sqrt(ss / static_cast<double>(v.size()));
    };
    CHECK(std::abs(median(e16)) < 0.10);
    CHECK(rms(e16) < 0.20);
    CHECK(std::abs(median(e8)) < 0.10);
    CHECK(rms(e8) < 0.20);
    // The FP8 speed-up over BF16, shape for shape: measured 1.71-1.79 in the median, not 2x, and
    // fp8_efficiency_ratio fitted so that the model's speed-up is the measured one in the median
    // of the shapes' ratios (the median of the speed-ups themselves, here, within 1.3 %).
    CHECK(median(speedup_measured) < 1.8);
    CHECK(median(speedup_model) / median(speedup_measured) == Approx(1.0).margin(0.015));
  }
}

TEST_CASE("hardware a GPU under sustained GEMMs draws its power limit: the presets' TDPs, and the GB200's clock from the draws",
          "[hardware]") {
  // data/gpus.yaml aic-power: NVIDIA's aiconfigurator sweeps record each GEMM's mean board power
  // (NVML, 100 ms samples) at the default limit. Over the BF16 GEMMs with m >= 16,384 and n, k >=
  // 4,096 the median draw is H200 690.8 W of 700, B200 991.9 of 1,000, GB200 1,175.1 of 1,200:
  // each GPU sits at its limit. A data check: the model's full load draws its TDP, at most 2.5 %
  // above these, never below.
  std::map<std::string, GpuSpec> spec;
  for (auto [name, measured] : {std::pair{"h200-sxm", 690.8}, std::pair{"b200", 991.9}, std::pair{"gb200", 1175.1}}) {
    INFO(name);
    const Scenario s = one_gpu(name);
    spec[name] = s.cluster.gpu;
    const GpuModel gpu(s.cluster.gpu);
    CHECK(gpu.busy_power().value() == Approx(measured).epsilon(0.025));
    CHECK(gpu.busy_power().value() >= measured);
  }
  // The GB200's sustained clock is the B200's carried by the cube law to the GB200's dynamic
  // power at its limit, from the presets' TDPs. From the measured draws instead, (1,175.1 - 164) /
  // (991.9 - 138) W, the clock ratio is 1.058: the preset's holds within 1 %.
  const GpuSpec &b = spec["b200"], &g = spec["gb200"];
  const double from_draws = std::cbrt((1175.1 - g.idle_power.value()) / (991.9 - b.idle_power.value()));
  CHECK(GpuModel(g).clock().value() / GpuModel(b).clock().value() == Approx(from_draws).epsilon(0.01));
}
