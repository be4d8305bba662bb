// Roofline and power/DVFS against hand-computed values.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/error.hpp"
#include "hardware/gpu_model.hpp"

using namespace wallsim;
using namespace wallsim::hardware;
using parallelism::Kernel;
using parallelism::KernelKind;

namespace {
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
}  // namespace

TEST_CASE("hardware roofline: compute-bound, memory-bound, per-kind efficiency", "[hardware]") {
  const GpuModel m(gpu(), Watts{}, false);
  // 8e12 FLOPs at 0.8 x 1000 TFLOP/s = 10 ms (+1 us); its 1 GB at 2 TB/s effective is 0.5 ms.
  CHECK(m.time({KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)}).value() == Approx(10e-3 + 1e-6));
  // Attention at 0.5 x peak: 5e12 FLOPs -> 10 ms.
  CHECK(m.time({KernelKind::kAttention, "a", Flops::of(5e12), Bytes::of(1e6)}).value() == Approx(10e-3 + 1e-6));
  // Element-wise is memory-bound: 4 GB at 0.5 x 4 TB/s = 2 ms.
  CHECK(m.time({KernelKind::kElementwise, "e", Flops::of(1e9), Bytes::of(4e9)}).value() == Approx(2e-3 + 1e-6));
  // FP8 doubles the GEMM roof.
  const GpuModel f8(gpu(), Watts{}, true);
  CHECK(f8.time({KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e9)}).value() == Approx(5e-3 + 1e-6));
}

TEST_CASE("hardware power cap lowers the clock as the cube root of the dynamic headroom", "[hardware]") {
  const GpuModel free(gpu(), Watts{}, false);
  CHECK(free.clock().value() == Approx(2e9));
  CHECK(free.busy_power().value() == Approx(700));
  // Cap 400 W: dynamic budget 300 W of 600 W -> f = 2 GHz x cbrt(0.5) = 1.587 GHz.
  const GpuModel capped(gpu(), Watts::of(400), false);
  CHECK(capped.clock().value() == Approx(2e9 * std::cbrt(0.5)));
  CHECK(capped.busy_power().value() == Approx(400));
  const Kernel g{KernelKind::kGemm, "g", Flops::of(8e12), Bytes::of(1e6)};
  CHECK(capped.time(g).value() == Approx(10e-3 / std::cbrt(0.5) + 1e-6));
  // A cap below what the base clock draws stops at the base clock.
  CHECK(GpuModel(gpu(), Watts::of(150), false).clock().value() == Approx(1e9));
}

TEST_CASE("hardware missing efficiencies are bad input naming the key", "[hardware]") {
  GpuSpec g = gpu();
  g.gemm_efficiency = 0;
  CHECK_THROWS_WITH(GpuModel(g, Watts{}, false), Catch::Matchers::Contains("cluster.gpu.gemm_efficiency"));
}
