#include "hardware/gpu_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.hpp"
#include "core/text.hpp"

namespace wallsim::hardware {
namespace {
/// The cores' draw from idle to full load at the boost clock: the preset's, else TDP - idle.
Watts dynamic_power(const GpuSpec& spec) {
  return spec.dynamic_power.value() > 0.0 ? spec.dynamic_power : spec.tdp - spec.idle_power;
}
/// The clock a full load holds at the TDP: the measured sustained clock, else the boost clock.
Frequency full_load_clock(const GpuSpec& spec) {
  return spec.sustained_clock.value() > 0.0 ? spec.sustained_clock : spec.boost_clock;
}
}  // namespace

std::vector<std::string> missing_fields(const GpuSpec& spec) {
  std::vector<std::string> out;
  if (spec.cores > 0) return out;  // a wafer: its own model (wafer/)
  for (auto [key, v] : {std::pair{"gemm_efficiency", spec.gemm_efficiency},
                        std::pair{"attention_efficiency", spec.attention_efficiency},
                        std::pair{"memory_efficiency", spec.memory_efficiency},
                        std::pair{"idle_power", spec.idle_power.value()}}) {
    if (v <= 0.0) out.emplace_back(key);
  }
  return out;
}

GemmPrecision gemm_precision(bool fp8, bool fp8_blockwise) {
  return !fp8 ? GemmPrecision::kBf16 : fp8_blockwise ? GemmPrecision::kFp8Blockwise : GemmPrecision::kFp8Tensorwise;
}

GpuModel::GpuModel(const GpuSpec& spec) : GpuModel(spec, Options{}) {}

GpuModel::GpuModel(const GpuSpec& spec, const Options& o)
    : spec_(spec),
      fp8_(o.precision != GemmPrecision::kBf16),
      blockwise_(o.precision == GemmPrecision::kFp8Blockwise),
      idle_(spec.idle_power) {
  const Watts power_cap = o.power_cap, reserve = o.reserve;
  // Every field the roofline and power models read, all the missing ones named at once.
  std::string missing;
  for (const auto& key : missing_fields(spec)) missing += (missing.empty() ? "cluster.gpu." : ", cluster.gpu.") + key;
  if (!missing.empty()) {
    throw Error("cluster.gpu", "'" + spec.name + "' is incomplete for the roofline and power models: missing " + missing +
                                   " (see data/gpus.yaml)");
  }
  if (fp8_ && !(spec.fp8_dense.value() > 0.0)) {
    throw Error("training.precision", "fp8: '" + spec.name + "' has no FP8 peak (cluster.gpu.fp8_dense)");
  }
  if (blockwise_) {
    std::string lack;
    for (auto [key, v] : {std::pair{"fp8_blockwise_ratio", spec.fp8_blockwise_ratio},
                          std::pair{"fp8_blockwise_wgrad_ratio", spec.fp8_blockwise_wgrad_ratio}}) {
      if (v <= 0.0) lack += (lack.empty() ? "cluster.gpu." : ", cluster.gpu.") + std::string(key);
    }
    if (!lack.empty()) {
      throw Error("training.fp8_recipe", "blockwise: '" + spec.name + "' has no measured rate for the blockwise recipe's FP8 GEMMs (" +
                                             lack + "; data/gpus.yaml gives them where measured)");
    }
  }
  // The GEMM tiles cuBLAS picks among: the largest either way round, and with
  // gemm_tile_intensity the smaller ones (64 to 256 a side, no larger in area) at their rate.
  if (spec.gemm_tile_rows > 0) {
    const double r0 = spec.gemm_tile_rows, c0 = spec.gemm_tile_cols;
    tiles_.push_back({r0, c0, 1.0});
    if (c0 != r0) tiles_.push_back({c0, r0, 1.0});
    if (spec.gemm_tile_intensity > 0.0) {
      const double top = r0 * c0 / (r0 + c0);
      for (double tr = 64; tr <= std::max(r0, c0); tr *= 2) {
        for (double tc = 64; tc <= std::max(r0, c0); tc *= 2) {
          if (tr * tc > r0 * c0 || (tr == r0 && tc == c0) || (tr == c0 && tc == r0)) continue;
          tiles_.push_back({tr, tc, (1.0 + spec.gemm_tile_intensity / top) / (1.0 + spec.gemm_tile_intensity / (tr * tc / (tr + tc)))});
        }
      }
    }
  }
  dynamic_ = dynamic_power(spec);
  if (dynamic_.value() <= 0.0) {
    throw Error("cluster.gpu.tdp", to_string(spec.tdp) + " is not above the idle power " + to_string(idle_) +
                                       " (cluster.gpu.idle_power): the GPU would have no power to compute with");
  }
  check_spec(spec);
  // The CLI checks a user's cap against its flag first; this guards every other caller.
  if (power_cap.value() != 0.0) check_power_cap(spec, power_cap, "power cap");
  cap_ = power_cap.value() > 0.0 ? power_cap : spec.tdp;
  if (!(reserve.value() >= 0.0) || !std::isfinite(reserve.value())) throw std::logic_error("GpuModel: bad reserve");
  const double headroom = (cap_ - reserve - idle_).value() / dynamic_.value();
  // At the TDP a full load runs at its sustained clock: the peaks' share of it is ratio_.
  const Frequency full = full_load_clock(spec);
  const double full_ratio = spec.sustained_clock.value() > 0.0 ? full.value() / spec.boost_clock.value() : 1.0;
  clock_ = full;
  ratio_ = full_ratio;
  if (headroom >= 1.0) return;
  if (spec.boost_clock.value() <= 0.0) {
    throw Error("cluster.gpu.boost_clock", "missing: a power cap below the full-load draw needs the clocks");
  }
  // DVFS goes no lower than the base clock: the cores' share of the cap (what the traffic
  // leaves of it) must reach the base clock's draw. (A min_power_limit bounds the caps a user
  // may set, check_power_cap; the board holds it whatever its traffic draws.)
  const double floor = spec.base_clock.value() > 0.0 ? spec.base_clock.value() / full.value() : 0.0;
  const Watts floor_draw = idle_ + dynamic_ * (floor * floor * floor);
  if (!(headroom > 0.0) || (cap_ - reserve).value() < floor_draw.value()) {
    throw Error("power cap", to_string(cap_) + " (--power-cap, sweep's power_cap, cluster.power_cap or the TDP) cannot be held by " +
                                 spec.name + " in this step: its memory and link traffic draw " +
                                   to_string(reserve) + " while it computes, leaving its cores less than " +
                                   (floor > 0.0 ? "they draw at the base clock " + to_string(spec.base_clock) + " (" +
                                                      to_string(floor_draw) + ")"
                                                : "its idle power") +
                                   "; give a higher cap");
  }
  const double r = std::max(std::cbrt(headroom), floor);
  load_ = r;
  ratio_ = full_ratio * r;
  clock_ = Frequency::of(full.value() * r);
}

void check_spec(const GpuSpec& spec) {
  // The physical ranges the roofline and power models rely on (a zero or reversed value
  // would give infinite or meaningless times and clocks, not an error).
  if (!(spec.memory_bandwidth.value() > 0.0)) {
    throw Error("cluster.gpu.memory_bandwidth", "must be positive: every kernel reads or writes memory");
  }
  if (spec.base_clock.value() > 0.0 && !(spec.boost_clock.value() > 0.0)) {
    throw Error("cluster.gpu.boost_clock", "missing: a base clock is read against the boost clock");
  }
  if (spec.sfu_per_sm_clock > 0 && !(spec.boost_clock.value() > 0.0 && spec.sms > 0)) {
    throw Error("cluster.gpu.sfu_per_sm_clock", "needs cluster.gpu.sms and cluster.gpu.boost_clock: the softmax's rate is "
                                                "so many exponentials per SM per clock");
  }
  if (spec.sustained_clock.value() > 0.0 &&
      !(spec.boost_clock.value() > 0.0 && spec.sustained_clock.value() <= spec.boost_clock.value())) {
    throw Error("cluster.gpu.sustained_clock", to_string(spec.sustained_clock) +
                                                   " must be at most the boost clock (cluster.gpu.boost_clock), which the peaks are quoted at");
  }
  if (spec.base_clock.value() > full_load_clock(spec).value()) {
    throw Error("cluster.gpu.base_clock", to_string(spec.base_clock) + " is above the clock a full load holds at the TDP " +
                                              to_string(full_load_clock(spec)));
  }
  if (spec.base_clock.value() > spec.boost_clock.value()) {
    throw Error("cluster.gpu.base_clock", to_string(spec.base_clock) + " is above the boost clock " +
                                              to_string(spec.boost_clock));
  }
  if (spec.min_power_limit.value() > 0.0 &&
      !(spec.min_power_limit.value() > spec.idle_power.value() && spec.min_power_limit.value() <= spec.tdp.value())) {
    throw Error("cluster.gpu.min_power_limit", to_string(spec.min_power_limit) + " must be above the idle power " +
                                                   to_string(spec.idle_power) + " and at most the TDP " +
                                                   to_string(spec.tdp));
  }
}

std::optional<CapFloor> lowest_cap(const GpuSpec& spec) {
  if (spec.cores > 0) return std::nullopt;
  const Watts dynamic = dynamic_power(spec);
  std::optional<CapFloor> f;
  if (spec.base_clock.value() > 0.0 && spec.boost_clock.value() > 0.0) {
    const double r = spec.base_clock.value() / full_load_clock(spec).value();
    f = CapFloor{spec.idle_power + dynamic * (r * r * r),
                 "its full-load draw at its base clock " + to_string(spec.base_clock) + ", below which DVFS cannot go"};
  }
  if (spec.min_power_limit.value() > 0.0 && (!f || spec.min_power_limit.value() > f->watts.value())) {
    f = CapFloor{spec.min_power_limit, "its minimum power limit, min_power_limit in data/gpus.yaml"};
  }
  return f;
}

void check_power_cap(const GpuSpec& spec, Watts cap, const std::string& path) {
  const std::string w = format_number(cap.value()) + " W";
  if (spec.cores <= 0) check_spec(spec);
  if (spec.cores > 0) {
    throw Error(path, "does not apply to the wafer step: '" + spec.name +
                          "' has no clocks or DVFS model in data/gpus.yaml, so a cap has nothing to act on");
  }
  if (!std::isfinite(cap.value()) || !(cap.value() > spec.idle_power.value())) {
    throw Error(path, w + " is not above " + spec.name + "'s idle power " + to_string(spec.idle_power) +
                          ": a GPU cannot be capped at or below what it draws doing nothing (leave the cap out to "
                          "run at the TDP)");
  }
  if (cap.value() > spec.tdp.value()) {
    throw Error(path, w + " is above " + spec.name + "'s TDP " + to_string(spec.tdp) +
                          ", its highest power limit (leave the cap out to run at the TDP)");
  }
  const Watts dynamic = dynamic_power(spec);
  const Watts full = spec.idle_power + dynamic;
  if (cap.value() >= full.value()) return;
  if (const auto f = lowest_cap(spec)) {
    if (cap.value() < f->watts.value()) {
      throw Error(path, w + " is below the lowest cap " + spec.name + " can hold, " + to_string(f->watts) + " (" +
                            f->why + ")");
    }
    return;
  }
  throw Error(path, w + " is below " + spec.name + "'s full-load draw " + to_string(full) +
                        " and data/gpus.yaml gives it neither base_clock nor min_power_limit, so how far DVFS can "
                        "lower its clock is unknown");
}

Watts GpuModel::reserve_for(Seconds step, Seconds busy, Joules energy) const {
  if (!(busy.value() > 0.0) || !(step.value() > 0.0) || energy.value() <= cap_.value() * step.value()) return Watts{};
  const double traffic = energy.value() - idle_.value() * step.value() - (busy_power() - idle_).value() * busy.value();
  return Watts::of(std::max(0.0, traffic) / busy.value());
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
    // cuBLAS picks the tile that suits the shape (tiles_, set up with the model).
    double best = 0.0;
    for (const auto& t : tiles_) {
      const double tiles = std::ceil(k.rows / t.rows) * std::ceil(k.cols / t.cols) * k.batch;
      best = std::max(best, t.rate * wave_fill(k.rows * k.cols * k.batch / (t.rows * t.cols), tiles, spec_.sms));
    }
    return best;
  }
  if (k.kind == KernelKind::kAttention && spec_.attention_block > 0) {
    // One thread block per query block of each sequence-head, in waves of one per SM; each
    // loops over the key blocks its queries see (all of them, or under a causal mask those up
    // to the diagonal, whose blocks are computed whole and half used), and pays a fixed cost
    // per query block worth attention_depth_overhead keys.
    const double b = spec_.attention_block;
    const double q_blocks = std::ceil(k.rows / b);
    const double tiles = q_blocks * k.batch;
    double f = tiles / (std::ceil(tiles / spec_.sms) * spec_.sms);
    if (k.keys > 0.0) {
      const double k_blocks = std::ceil(k.keys / b);
      const double useful = k.rows * k.keys / (b * b) * (k.causal ? 0.5 : 1.0);
      const double visited = k.causal ? (q_blocks * k_blocks + q_blocks) / 2.0 : q_blocks * k_blocks;
      const double overhead = k.backward && spec_.attention_backward_depth_overhead > 0.0
                                  ? spec_.attention_backward_depth_overhead
                                  : spec_.attention_depth_overhead;
      f *= useful / (visited + q_blocks * overhead / b);
    } else {
      f *= k.rows / (q_blocks * b);
    }
    return f;
  }
  return 1.0;
}

Seconds GpuModel::time(const parallelism::Kernel& k) const {
  using parallelism::KernelKind;
  double peak = spec_.bf16_dense.value();
  double eff = spec_.memory_efficiency;
  if (k.kind == KernelKind::kGemm) {
    eff = spec_.gemm_efficiency;
    // A tile's prologue and epilogue take a fixed time, gemm_depth_overhead steps of reduction
    // at the bf16 rate; FP8 steps through the reduction fp8_dense / bf16_dense times as fast, so
    // the same time is worth that many more steps.
    double overhead = spec_.gemm_depth_overhead;
    if (fp8_ && !k.bf16_only) {
      peak = spec_.fp8_dense.value();
      overhead *= peak / spec_.bf16_dense.value();
      eff *= !blockwise_ ? spec_.fp8_efficiency_ratio : k.wgrad ? spec_.fp8_blockwise_wgrad_ratio : spec_.fp8_blockwise_ratio;
    }
    if (k.depth > 0.0) eff *= k.depth / (k.depth + overhead);
  }
  double work = k.flops.value();
  if (k.kind == KernelKind::kAttention) {
    eff = spec_.attention_efficiency;
    if (k.backward) {
      // FlashAttention's backward recomputes the scores: five matmuls for the forward's two, 2.5x
      // the forward's FLOPs where the model counts 2x; its efficiency is measured on that count.
      work *= 1.25;
      if (spec_.attention_backward_efficiency > 0.0) eff = spec_.attention_backward_efficiency;
    }
  }
  double compute = k.kind == KernelKind::kElementwise ? 0.0 : work / (peak * eff);
  if (k.kind == KernelKind::kAttention && spec_.sfu_per_sm_clock > 0 && spec_.sms > 0 && k.cols + k.depth > 0.0) {
    // The softmax: one exponential per score on the special-function units, whose rate does
    // not grow with the head dimension as the matmuls' work does. The forward's FLOPs are
    // 2 (d_qk + d_v) per score, the backward's counted twice that.
    const double scores = k.flops.value() / (2.0 * (k.depth + k.cols) * (k.backward ? 2.0 : 1.0));
    const double softmax = scores / (spec_.sfu_per_sm_clock * static_cast<double>(spec_.sms) * spec_.boost_clock.value());
    const double o = spec_.attention_softmax_overlap;
    compute = std::max(compute, softmax) + (1.0 - o) * std::min(compute, softmax);
  }
  if (compute > 0.0) compute /= fill(k) * ratio_;
  const double stream = k.norm && k.backward && spec_.norm_backward_efficiency > 0.0 ? spec_.norm_backward_efficiency
                                                                                    : spec_.memory_efficiency;
  const double memory = k.bytes.value() / (spec_.memory_bandwidth.value() * stream);
  double share = 1.0;  // of the SMs: a communication kernel beside it takes some (TP overlap)
  if (k.sms_taken > 0) {
    if (spec_.sms <= 0) {
      throw Error("cluster.gpu.sms", "missing: kernel '" + k.name + "' shares the GPU with communication kernels that take " +
                                         std::to_string(k.sms_taken) + " SMs (parallel.tp_comm_overlap, an overlapped pair's all-to-all), "
                                         "which needs the GPU's SM count");
    }
    if (spec_.sms <= k.sms_taken) {
      throw Error("cluster.gpu.sms", "kernel '" + k.name + "' is left no SMs: the communication kernels beside it (parallel.tp_comm_overlap's, "
                                     "NCCL's channels: cluster.scale_up/scale_out.nccl_channels) take " + std::to_string(k.sms_taken) +
                                     " of the GPU's " + std::to_string(spec_.sms));
    }
    share = static_cast<double>(spec_.sms - k.sms_taken) / spec_.sms;
  }
  const Seconds t = Seconds::of(std::max(compute, memory) / share) + spec_.kernel_overhead;
  if (!std::isfinite(t.value())) {
    // Only out-of-range GPU figures get here (a huge gemm_depth_overhead, a vanishing peak).
    throw Error("cluster.gpu", "'" + spec_.name + "' takes no finite time for kernel '" + k.name +
                                   "': check its peaks, efficiencies and gemm_depth_overhead");
  }
  return t;
}

Joules GpuModel::energy(const Activity& a, EnergyPerBit scale_up, EnergyPerBit scale_out) const {
  return Joules::of(idle_.value() * a.step.value() + (busy_power() - idle_).value() * a.busy.value() +
                    a.hbm.value() * 8.0 * spec_.memory_energy.value() + a.scale_up.value() * 8.0 * scale_up.value() +
                    a.scale_out.value() * 8.0 * scale_out.value());
}

Watts GpuModel::busy_power() const { return idle_ + dynamic_ * (load_ * load_ * load_); }

}  // namespace wallsim::hardware
