// One accelerator's roofline and power. A kernel takes
//   max(FLOPs / (peak x efficiency(kind) x fill(shape) x f/f_boost), bytes / (HBM bandwidth x efficiency))
//   + a fixed per-kernel overhead,
// at the sustained clock f. fill(shape) is the fraction of the GPU's thread-block slots doing
// useful work, after tile quantization (a GEMM's output is cut into whole tiles) and wave
// quantization (tiles run in waves of one per SM), as NVIDIA's Matrix Multiplication
// Background guide (DU-09799-001, ch. 3) describes, with the tile (of those cuBLAS has) that runs
// the GEMM fastest; fused attention is cut into query blocks, each looping over the key blocks
// it sees (up to the diagonal when causal) with a fixed cost per block, and its softmax takes
// one exponential per score on the special-function units (sfu_per_sm_clock of them per SM per
// clock), after the score matmuls or beside them (attention_softmax_overlap, the schedule's):
// what makes a small head dimension slower per FLOP.
// A GEMM's efficiency also falls with its reduction depth k as k / (k + k0): each output tile
// pays a fixed prologue and epilogue (k0, gemm_depth_overhead) besides its k-long main loop.
// Power is static + activity x dynamic x (f/f_full)^3 (dynamic power ∝ f·V² with the voltage
// scaling with the clock over the DVFS range), f_full the clock a full load holds at the TDP:
// the measured sustained_clock where a source gives one (AMD's MI300X holds 1,207 of its
// 2,100 MHz at 750 W), else the boost clock; the peaks are quoted at the boost clock. Under a
// power cap the clock is the highest one whose full-load draw fits. A cap is the board's
// limit, as nvidia-smi -pl sets it: it must be above the idle draw, at most the TDP (the
// highest limit), and at least the lowest limit the GPU accepts — its min_power_limit
// (nvidia-smi's "Min Power Limit") or, without one, its full-load draw at the base clock, below
// which DVFS cannot go. A cap outside that range is bad input, never a clock below the base
// clock or a draw above the cap. The board's draw while computing also carries the traffic the
// kernels and links move (bytes x energy per bit); the cap keeps room for it (`reserve`, the
// engine's second look at a step whose average draw came out above the cap), so a GPU's average
// power never exceeds its cap. Energy adds bytes moved x energy per bit for HBM and links.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/scenario.hpp"
#include "core/units.hpp"
#include "parallelism/model_math.hpp"

namespace wallsim::hardware {

/// The fields of a GPU preset that the roofline and power models read and it lacks (none for
/// a wafer, which has its own model): such a preset is incomplete, and `run` on it names them all.
std::vector<std::string> missing_fields(const GpuSpec& spec);

/// How a step's GEMMs run (training.precision, training.fp8_recipe).
enum class GemmPrecision {
  kBf16,           ///< at the bf16 peak
  kFp8Tensorwise,  ///< at the FP8 peak, one scale a tensor (Transformer Engine; fp8_efficiency_ratio)
  kFp8Blockwise,   ///< at the FP8 peak, 1x128 and 128x128 tiles scaled (DeepSeek-V3; fp8_blockwise ratios)
};

/// The precision of a run's GEMMs: bf16, or FP8 scaled per tensor or per block.
GemmPrecision gemm_precision(bool fp8, bool fp8_blockwise);

class GpuModel {
 public:
  struct Options {
    Watts power_cap{};  ///< 0 = the GPU's TDP
    /// Board power the cap keeps for memory and link traffic while computing.
    Watts reserve{};
    GemmPrecision precision = GemmPrecision::kBf16;
  };
  /// At the TDP, bf16 GEMMs.
  explicit GpuModel(const GpuSpec& spec);
  /// An Error when the cap is out of range (check_power_cap), the reserve leaves the cores less
  /// than the lowest limit's share, or the GPU has no FP8 peak (fp8_dense) or, for the
  /// blockwise recipe, no measured ratios for it.
  GpuModel(const GpuSpec& spec, const Options& o);

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
  /// The cap the clock obeys (the TDP when none was given).
  [[nodiscard]] Watts cap() const { return cap_; }
  /// For a step run with this model (per GPU: its length, time computing, energy), the board
  /// power its traffic drew per second of computing when the step's average draw exceeds the
  /// cap; zero when it fits. A model built with this reserve holds the cap (the bytes are the
  /// same at a lower clock and the time computing only grows).
  [[nodiscard]] Watts reserve_for(Seconds step, Seconds busy, Joules energy) const;

 private:
  GpuSpec spec_;
  bool fp8_;
  bool blockwise_;  ///< FP8 GEMMs of the blockwise recipe
  Watts idle_, dynamic_, cap_;
  Frequency clock_;
  struct Tile {
    double rows, cols, rate;  ///< a GEMM output tile and its rate relative to the largest
  };
  std::vector<Tile> tiles_;
  double ratio_ = 1.0;  ///< the clock over the boost clock (the peaks' clock)
  double load_ = 1.0;   ///< the clock over the full-load clock at the TDP (the dynamic power's cube root)
};

/// The GPU figures' physical ranges the models rely on (memory bandwidth above zero, base
/// clock at most the boost clock, a minimum power limit between idle and TDP): an Error naming
/// the key. GpuModel checks them; exposed for tests.
void check_spec(const GpuSpec& spec);

/// The lowest power cap `spec` can hold at full load, and why: its min_power_limit, or its
/// full-load draw at the base clock; nullopt when it has neither (or is a wafer).
struct CapFloor {
  Watts watts;
  std::string why;
};
std::optional<CapFloor> lowest_cap(const GpuSpec& spec);

/// A cap given by the user (`path`: the flag or key, e.g. "--power-cap"): an Error naming it
/// unless it is above the idle draw, at most the TDP and at least lowest_cap(); wafer-scale
/// parts have no DVFS model, so a cap does not apply to them.
void check_power_cap(const GpuSpec& spec, Watts cap, const std::string& path);

}  // namespace wallsim::hardware
