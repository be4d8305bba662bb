// Published measurements as cases (data/validation/*.yaml), run through the same models as
// `wallsim run` and `wallsim collective`, with the error of each prediction.
//
// A case file holds one source's cases:
//   group: megatron              # cases are summarised per group
//   references: {id: citation}
//   defaults: {...}              # merged under every case (same keys as a case)
//   cases:
//     - id: N21-1
//       metric: tflops_per_gpu   # see Metric
//       measured: 137
//       tolerance: 15%           # the case is flagged when |error| exceeds it
//       fit: true                # used to fit the calibrated parameters (else a check)
//       group: ...               # overrides the file's group
//       source: "[V] n21 Table 1"
//       scenario: {...}          # a scenario, as for `wallsim run`
//       choose: {training.micro_batch: [1, 2, 4]}   # inputs the source leaves out: the fastest
//                                                   # valid combination is taken, as the
//                                                   # authors tuned their runs
//       collective: {op: all_reduce, bytes: 8GiB, algo: ring, group: [0, 8]}   # busbw cases
//       flops: narayanan         # tflops_per_gpu: the source's own FLOP count
//       assumptions: "..."
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/presets.hpp"

namespace wallsim::validation {

enum class Metric {
  kStepTime,         ///< step_time_s: seconds per iteration
  kTflopsPerGpu,     ///< tflops_per_gpu: the source's FLOPs per iteration / GPUs / step time
  kLayerForward,     ///< layer_forward_s: one layer's forward for one micro-batch
  kLayerBackward,    ///< layer_backward_s
  kBusBandwidth,     ///< busbw_GBps: nccl-tests bus bandwidth, GB/s
  kActivationBytes,  ///< activation_bytes_per_layer: bytes one layer keeps for backward
  kCheckpointBytes,  ///< checkpoint_bytes: the whole checkpoint (weights and optimizer)
  kGemmTflops,       ///< gemm_tflops: one GEMM's throughput on one GPU (kernel-level), TFLOP/s
  kAttentionTflops,  ///< attention_tflops: fused attention's throughput on one GPU, FlashAttention's FLOP count
};
std::string to_string(Metric m);

struct Case {
  std::string id, group, file, source, assumptions;
  Metric metric = Metric::kStepTime;
  double measured = 0.0;
  double tolerance = 0.0;  ///< fraction
  bool fit = false;
  std::string scenario_yaml;  ///< the merged scenario, as YAML text
  /// Training cases: run on the event engine (`engine: events`, what `wallsim run` runs) or
  /// on the composed step (`composed`, the default: what `search` ranks plans with). A plan
  /// only the event engine runs goes there either way.
  bool events = false;
  /// The compute precision the case measures, "16-bit" (bf16 or fp16) or "fp8": a GEMM's
  /// inputs, a training run's training.precision (bf16 when not given), attention's 16-bit
  /// tables; empty for cases that measure no compute (bus bandwidth, bytes).
  std::string precision;
  std::vector<std::pair<std::string, std::vector<std::string>>> choose;  ///< key -> candidates
  std::string flops;          ///< FLOP formula of tflops_per_gpu
  std::string op, bytes, algo;  ///< busbw cases
  std::vector<int> endpoints;   ///< busbw: endpoints in rank order; empty = every GPU
  /// gemm_tflops: b GEMMs of m x k by k x n, in bf16 or fp8 (inputs; bf16 output)
  double gemm_b = 1, gemm_m = 0, gemm_n = 0, gemm_k = 0;
  bool gemm_fp8 = false;
  /// SMs another kernel holds beside it (DeepEP's in DeepSeek's training): it runs on the rest.
  int gemm_sms_taken = 0;
  /// FP8 of the blockwise recipe (gemm.recipe: blockwise), and a weight-gradient GEMM (gemm.pass:
  /// weight_gradient; forward and data_gradient run alike).
  bool gemm_blockwise = false, gemm_wgrad = false;
  /// attention_tflops: `batch` sequences of `seq` tokens, `heads` query heads (kv_heads of
  /// keys and values) of `head_dim`, causal or not; pass forward, backward or both (their sum
  /// of FLOPs over their sum of times, as FlashAttention's benchmarks report).
  double att_batch = 0, att_seq = 0, att_heads = 0, att_kv_heads = 0, att_head_dim = 0;
  bool att_causal = false;
  std::string att_pass = "forward";
};

/// Every case of every *.yaml file in `dir`, in file then listing order. Errors name the file
/// and key.
std::vector<Case> load_cases(const std::string& dir);

struct Result {
  const Case* c = nullptr;
  double predicted = 0.0;
  double error = 0.0;     ///< predicted / measured - 1
  std::string chosen;     ///< the `choose` combination taken ("" when none)
  [[nodiscard]] bool within() const;
};

struct Options {
  std::string network = "flow";
  std::vector<std::string> sets;  ///< --set overrides applied to every case
};

/// Runs one case; an Error naming the case when no candidate plan is valid.
Result run_case(const Case& c, const Presets& presets, const Options& o);

/// Median and largest absolute error of `results` (0 when empty).
struct Summary {
  std::size_t cases = 0;
  double median_abs = 0.0, max_abs = 0.0;
};
Summary summarize(const std::vector<Result>& results);

/// Fits `keys` (scenario keys with a search range, e.g. cluster.gpu.gemm_efficiency over
/// [0.4, 0.9]) on `cases` by coordinate-wise golden-section search, minimising the mean squared
/// log error. Returns the fitted values in the order given.
struct FitKey {
  std::string key;
  double lo = 0.0, hi = 0.0;
  std::string unit;  ///< appended to each trial value (e.g. "us"); empty for a plain number
};
std::vector<double> fit(const std::vector<const Case*>& cases, const std::vector<FitKey>& keys,
                        const Presets& presets, const Options& o);

}  // namespace wallsim::validation
