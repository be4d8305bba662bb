// One accelerator's roofline and power. A kernel takes
//   max(FLOPs / (peak x efficiency(kind) x fill(shape) x f/f_boost), bytes / (HBM bandwidth x efficiency))
//   + a fixed per-kernel overhead,
// at the sustained clock f. fill(shape) is the fraction of the GPU's thread-block slots doing
// useful work, after tile quantization (a GEMM's output is cut into whole tiles) and wave
// quantization (tiles run in waves of one per SM), as NVIDIA's Matrix Multiplication
// Background guide (DU-09799-001, ch. 3) describes; fused attention is cut into query blocks.
// A GEMM's efficiency also falls with its reduction depth k as k / (k + k0): each output tile
// pays a fixed prologue and epilogue (k0, gemm_depth_overhead) besides its k-long main loop.
// Power is static + activity x dynamic x (f/f_boost)^3 (dynamic
// power ∝ f·V² with the voltage scaling with the clock over the DVFS range); under a power
// cap the sustained clock is the highest one whose full-load draw fits, floored at the base
// clock. Energy adds bytes moved x energy per bit for HBM.
#pragma once

#include "core/scenario.hpp"
#include "core/units.hpp"
#include "parallelism/model_math.hpp"

namespace wallsim::hardware {

class GpuModel {
 public:
  /// `power_cap` 0 = the GPU's TDP. `fp8` runs GEMMs at the FP8 peak where the GPU has one.
  GpuModel(const GpuSpec& spec, Watts power_cap, bool fp8);

  /// Time of one kernel at the sustained clock.
  [[nodiscard]] Seconds time(const parallelism::Kernel& k) const;
  /// Fraction of the thread-block slots a kernel's shape fills (1 without a shape or SM count).
  [[nodiscard]] double fill(const parallelism::Kernel& k) const;
  /// Sustained clock under the power cap at full load.
  [[nodiscard]] Frequency clock() const { return clock_; }
  [[nodiscard]] double clock_ratio() const { return ratio_; }
  /// Draw while computing at full load, and while idle.
  [[nodiscard]] Watts busy_power() const;
  [[nodiscard]] Watts idle_power() const { return idle_; }
  [[nodiscard]] FlopRate peak() const { return spec_.bf16_dense; }
  [[nodiscard]] EnergyPerBit memory_energy() const { return spec_.memory_energy; }
  /// What one GPU does in a step, for its energy.
  struct Activity {
    Seconds step, busy;             ///< the step, and the time computing in it
    Bytes hbm, scale_up, scale_out;  ///< HBM traffic; bytes sent inside and out of its scale-up domain
  };
  /// Energy of one GPU over a step: idle power throughout, dynamic power while busy, and the
  /// bytes it moves through HBM and over each link class (the one home of this formula).
  [[nodiscard]] Joules energy(const Activity& a, EnergyPerBit scale_up, EnergyPerBit scale_out) const;
  [[nodiscard]] const GpuSpec& spec() const { return spec_; }

 private:
  GpuSpec spec_;
  bool fp8_;
  Watts idle_, dynamic_;
  Frequency clock_;
  double ratio_ = 1.0;
};

}  // namespace wallsim::hardware
