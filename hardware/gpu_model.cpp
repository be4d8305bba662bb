#include "hardware/gpu_model.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace wallsim::hardware {

GpuModel::GpuModel(const GpuSpec& spec, Watts power_cap, bool fp8)
    : spec_(spec), fp8_(fp8 && spec.fp8_dense.value() > 0.0), idle_(spec.idle_power) {
  // Every field the roofline and power models read, all the missing ones named at once.
  std::string missing;
  for (auto [key, v] : {std::pair{"gemm_efficiency", spec.gemm_efficiency},
                        std::pair{"attention_efficiency", spec.attention_efficiency},
                        std::pair{"memory_efficiency", spec.memory_efficiency},
                        std::pair{"idle_power", spec.idle_power.value()}}) {
    if (v <= 0.0) missing += (missing.empty() ? "cluster.gpu." : ", cluster.gpu.") + std::string(key);
  }
  if (!missing.empty()) {
    throw Error("cluster.gpu", "'" + spec.name + "' is incomplete for the roofline and power models: missing " + missing +
                                   " (see data/gpus.yaml)");
  }
  const Watts cap = power_cap.value() > 0.0 ? power_cap : spec.tdp;
  dynamic_ = spec.dynamic_power.value() > 0.0 ? spec.dynamic_power : spec.tdp - idle_;
  if (dynamic_.value() <= 0.0) throw Error("cluster.gpu.idle_power", "must be below tdp");
  clock_ = spec.boost_clock;
  if (spec.boost_clock.value() > 0.0) {
    const double headroom = (cap - idle_).value() / dynamic_.value();
    double r = headroom >= 1.0 ? 1.0 : std::cbrt(std::max(headroom, 0.0));
    if (spec.base_clock.value() > 0.0) r = std::max(r, spec.base_clock.value() / spec.boost_clock.value());
    ratio_ = r;
    clock_ = Frequency::of(spec.boost_clock.value() * r);
  } else if ((cap - idle_).value() < dynamic_.value()) {
    throw Error("cluster.gpu.boost_clock", "missing: a power cap below the full-load draw needs the clocks");
  }
}

namespace {
/// Useful work over slots: `tiles` blocks of which `useful` worth of work is real, run in
/// waves of `sms`.
double wave_fill(double useful, double tiles, int sms) {
  const double waves = std::ceil(tiles / sms);
  return useful / (waves * sms);
}
}  // namespace

double GpuModel::fill(const parallelism::Kernel& k) const {
  using parallelism::KernelKind;
  if (spec_.sms <= 0 || k.rows <= 0.0) return 1.0;
  if (k.kind == KernelKind::kGemm && spec_.gemm_tile_rows > 0) {
    // cuBLAS picks the tile orientation that suits the shape; take the better of the two.
    double best = 0.0;
    for (auto [tr, tc] : {std::pair{spec_.gemm_tile_rows, spec_.gemm_tile_cols},
                          std::pair{spec_.gemm_tile_cols, spec_.gemm_tile_rows}}) {
      const double tiles = std::ceil(k.rows / tr) * std::ceil(k.cols / tc) * k.batch;
      best = std::max(best, wave_fill(k.rows * k.cols * k.batch / (tr * tc), tiles, spec_.sms));
    }
    return best;
  }
  if (k.kind == KernelKind::kAttention && spec_.attention_block > 0) {
    const double tiles = std::ceil(k.rows / spec_.attention_block) * k.batch;
    return wave_fill(k.rows * k.batch / spec_.attention_block, tiles, spec_.sms);
  }
  return 1.0;
}

Seconds GpuModel::time(const parallelism::Kernel& k) const {
  using parallelism::KernelKind;
  double peak = spec_.bf16_dense.value();
  double eff = spec_.memory_efficiency;
  if (k.kind == KernelKind::kGemm) {
    eff = spec_.gemm_efficiency;
    if (k.depth > 0.0) eff *= k.depth / (k.depth + spec_.gemm_depth_overhead);
    if (fp8_) {
      peak = spec_.fp8_dense.value();
      eff *= spec_.fp8_efficiency_ratio;
    }
  } else if (k.kind == KernelKind::kAttention) {
    eff = spec_.attention_efficiency;
  }
  const double compute = k.kind == KernelKind::kElementwise ? 0.0 : k.flops.value() / (peak * eff * fill(k) * ratio_);
  const double memory = k.bytes.value() / (spec_.memory_bandwidth.value() * spec_.memory_efficiency);
  return Seconds::of(std::max(compute, memory)) + spec_.kernel_overhead;
}

Joules GpuModel::energy(const Activity& a, EnergyPerBit scale_up, EnergyPerBit scale_out) const {
  return Joules::of(idle_.value() * a.step.value() + (busy_power() - idle_).value() * a.busy.value() +
                    a.hbm.value() * 8.0 * spec_.memory_energy.value() + a.scale_up.value() * 8.0 * scale_up.value() +
                    a.scale_out.value() * 8.0 * scale_out.value());
}

Watts GpuModel::busy_power() const { return idle_ + dynamic_ * (ratio_ * ratio_ * ratio_); }

}  // namespace wallsim::hardware
