// The validation harness: case files, errors, summaries, and one case against a closed form.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "test_support.hpp"
#include "validation/validate.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace wallsim;

namespace {

fs::path case_dir(const std::string& name, const std::string& yaml) {
  const fs::path d = fs::temp_directory_path() / ("wallsim-validation-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "cases.yaml") << yaml;
  return d;
}

/// The error loading a case file gives ("no error" when it loads).
std::string error_of(const std::string& name, const std::string& yaml) {
  try {
    validation::load_cases(case_dir(name, yaml).string());
  } catch (const Error& e) {
    return std::string(e.what());
  }
  return std::string("no error");
}

const char* kRingCase =
    "group: g\n"
    "defaults:\n"
    "  metric: busbw_GBps\n"
    "  tolerance: 5%\n"
    "  source: test\n"
    "cases:\n"
    "  - id: RING\n"
    "    measured: 100\n"
    "    scenario: {cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8,\n"
    "               scale_up: {bandwidth: 100 GB/s, latency: 0 us}}}\n"
    "    collective: {op: all_reduce, bytes: 8GiB, algo: ring}\n";

}  // namespace

TEST_CASE("validation a ring all-reduce's busbw is the link bandwidth (closed form)", "[validation]") {
  // Ring all-reduce: 2(n-1) steps of S/n over 100 GB/s links, so busbw = algbw x 2(n-1)/n
  // = 100 GB/s exactly with no latency and full efficiency.
  const auto cases = validation::load_cases(case_dir("ring", kRingCase).string());
  REQUIRE(cases.size() == 1);
  CHECK(cases[0].group == "g");
  CHECK(cases[0].tolerance == Approx(0.05));
  const auto r = validation::run_case(cases[0], test::presets(), {});
  CHECK(r.predicted == Approx(100.0).epsilon(1e-9));
  CHECK(r.error == Approx(0.0).margin(1e-9));
  CHECK(r.within());
}

TEST_CASE("validation summaries are the median and the largest absolute error", "[validation]") {
  validation::Case c;
  std::vector<validation::Result> rs(4);
  const double errors[] = {0.01, -0.03, 0.02, -0.10};
  for (std::size_t i = 0; i < rs.size(); ++i) {
    rs[i].c = &c;
    rs[i].error = errors[i];
  }
  const auto s = validation::summarize(rs);
  CHECK(s.cases == 4);
  CHECK(s.median_abs == Approx(0.025));  // |errors| sorted: 0.01 0.02 0.03 0.10
  CHECK(s.max_abs == Approx(0.10));
  rs.pop_back();
  CHECK(validation::summarize(rs).median_abs == Approx(0.02));
  CHECK(validation::summarize({}).cases == 0);
}

TEST_CASE("validation bad case files name the key", "[validation]") {
  std::string ring = kRingCase;
  CHECK_THAT(error_of("metric", std::string(ring).replace(ring.find("busbw_GBps"), 10, "busbw")),
             Contains("cases.yaml.cases[0].metric: 'busbw' is not one of"));
  CHECK_THAT(error_of("measured", std::string(ring).replace(ring.find("measured: 100"), 13, "measured: -1")),
             Contains("cases.yaml.cases[0].measured: must be positive"));
  CHECK_THAT(error_of("tolerance", std::string(ring).replace(ring.find("5%"), 2, "x%")),
             Contains("tolerance"));
  CHECK_THAT(error_of("key", std::string(ring).replace(ring.find("measured: 100"), 13, "measured: 100\n    mesured: 1")),
             Contains("mesured"));
  CHECK_THAT(error_of("twice", ring + ring.substr(ring.find("  - id: RING"))), Contains("case id 'RING' appears twice"));
  CHECK_THAT(error_of("op", std::string(ring).replace(ring.find("all_reduce"), 10, "allreduce")), Contains("op"));
  CHECK_THAT(error_of("nodir", ""), Contains("cases.yaml"));
}

TEST_CASE("validation a choice no candidate of which is valid is an error naming the case", "[validation]") {
  const std::string yaml =
      "group: g\n"
      "cases:\n"
      "  - id: BAD\n"
      "    metric: step_time_s\n"
      "    measured: 1\n"
      "    tolerance: 10%\n"
      "    source: test\n"
      "    scenario: {cluster: {preset: selene-a100, nodes: 1, scale_out: {nodes_per_leaf: 1, spines: 1}},\n"
      "               model: {layers: 4, hidden: 1024, heads: 16, ffn: 4096, vocab: 51200},\n"
      "               training: {seq_len: 2048, global_batch: 8}, parallel: {tp: 8}}\n"
      "    choose: {parallel.tp: [3, 5]}\n";
  const auto cases = validation::load_cases(case_dir("choice", yaml).string());
  CHECK_THROWS_WITH(validation::run_case(cases[0], test::presets(), {}), Contains("BAD: no valid plan"));
}

TEST_CASE("validation a gemm_tflops case is the roofline of one GEMM (closed form)", "[validation]") {
  // 2048 x 2048 outputs in 256 x 128 tiles: 128 tiles on 132 SMs, one wave, 128/132 filled.
  // No depth or kernel overhead: BF16 at 989.4 x 0.5 x 128/132 TFLOP/s; FP8 at 1978.9 x 0.5 x
  // the FP8 ratio (0.9434) x 128/132. Both compute-bound (HBM: 42 MB in 16 us against 72 us).
  const std::string yaml =
      "group: g\n"
      "defaults:\n"
      "  metric: gemm_tflops\n"
      "  tolerance: 5%\n"
      "  source: test\n"
      "  scenario: {cluster: {gpu: {preset: h100-sxm, gemm_efficiency: 0.5, gemm_depth_overhead: 0, kernel_overhead: 0 s},\n"
      "             nodes: 1, gpus_per_node: 1}}\n"
      "cases:\n"
      "  - {id: BF16, measured: 400, gemm: {m: 2048, n: 2048, k: 4096}}\n"
      "  - {id: FP8, measured: 800, gemm: {m: 2048, n: 2048, k: 4096, precision: fp8}}\n"
      "  - {id: SMS, measured: 300, gemm: {m: 2048, n: 2048, k: 4096, sms_taken: 20}}\n"
      "  - {id: BW, measured: 600, gemm: {m: 2048, n: 2048, k: 4096, precision: fp8, recipe: blockwise, pass: data_gradient}}\n"
      "  - {id: BWW, measured: 400, gemm: {m: 2048, n: 2048, k: 4096, precision: fp8, recipe: blockwise, pass: weight_gradient}}\n";
  const auto cases = validation::load_cases(case_dir("gemm", yaml).string());
  REQUIRE(cases.size() == 5);
  CHECK(validation::run_case(cases[0], test::presets(), {}).predicted == Approx(989.4 * 0.5 * 128 / 132).epsilon(1e-9));
  CHECK(validation::run_case(cases[1], test::presets(), {}).predicted ==
        Approx(1978.9 * 0.5 * 0.9434 * 128 / 132).epsilon(1e-9));
  // The blockwise recipe: the H100's fp8_blockwise_ratio (0.7866) for a data gradient, its
  // fp8_blockwise_wgrad_ratio (0.5364) for a weight gradient.
  CHECK(validation::run_case(cases[3], test::presets(), {}).predicted == Approx(1978.9 * 0.5 * 0.7866 * 128 / 132).epsilon(1e-9));
  CHECK(validation::run_case(cases[4], test::presets(), {}).predicted == Approx(1978.9 * 0.5 * 0.5364 * 128 / 132).epsilon(1e-9));
  CHECK_THAT(error_of("gemm-recipe", std::string(yaml).replace(yaml.find("recipe: blockwise"), 17, "recipe: rowwise__")),
             Contains("gemm.recipe: 'rowwise__' is not one of tensorwise, blockwise"));
  CHECK_THAT(error_of("gemm-recipe-bf16", std::string(yaml).replace(yaml.find("precision: fp8, recipe"), 14, "precision: bf16")),
             Contains("gemm.recipe: scales FP8 GEMMs: it needs precision: fp8"));
  CHECK_THAT(error_of("gemm-pass", std::string(yaml).replace(yaml.find("pass: data_gradient"), 19, "pass: backward_____")),
             Contains("gemm.pass: 'backward_____' is not one of forward, data_gradient, weight_gradient"));
  // A GPU without the recipe's measured ratios: the case's key, not a scenario's.
  std::string on_b200 = yaml;
  on_b200.replace(on_b200.find("preset: h100-sxm"), 16, "preset: b200");
  const auto b200 = validation::load_cases(case_dir("gemm-b200", on_b200).string());
  CHECK_THROWS_WITH(validation::run_case(b200[3], test::presets(), {}),
                    Contains("BW.gemm.recipe: blockwise: 'b200' has no measured rate for it"));
  // 20 SMs held beside it (DeepEP's): the same GEMM on the 112 left.
  CHECK(validation::run_case(cases[2], test::presets(), {}).predicted == Approx(989.4 * 0.5 * 128 / 132 * 112 / 132).epsilon(1e-9));
  const auto all_taken =
      validation::load_cases(case_dir("gemm-sms", std::string(yaml).replace(yaml.find("sms_taken: 20"), 13, "sms_taken: 132")).string());
  CHECK_THROWS_WITH(validation::run_case(all_taken[2], test::presets(), {}),
                    Contains("SMS.gemm.sms_taken: 132 SMs taken leave 'h100-sxm' (132 SMs) none for the GEMM"));
  CHECK_THAT(error_of("gemm-sms-neg", std::string(yaml).replace(yaml.find("sms_taken: 20"), 13, "sms_taken: -1")),
             Contains("gemm.sms_taken"));
  CHECK_THAT(error_of("gemm-precision", std::string(yaml).replace(yaml.find("precision: fp8"), 14, "precision: fp16")),
             Contains("cases.yaml.cases[1].gemm.precision: 'fp16' is not one of bf16, fp8"));
  CHECK_THAT(error_of("gemm-dim", std::string(yaml).replace(yaml.find("m: 2048"), 7, "m: 0")), Contains("gemm.m"));
}

TEST_CASE("validation an attention_tflops case is fused attention's roofline (closed form)", "[validation]") {
  // 8 sequences x 33 heads of 1024 queries: 8 blocks of 128 each, 2112 blocks = 16 full waves
  // of 132 SMs. No overheads: the forward runs at 989.4 x 0.5; the backward, counted as 2.5x
  // the forward's FLOPs, at 989.4 x 0.4; both together at 3.5 / (1/0.5 + 2.5/0.4) of the peak.
  // Causal with an overhead of one block per query block: 32 useful pairs of 36 computed + 8.
  // The softmax's exponentials run beside the matmuls (attention_softmax_overlap 1), hidden.
  const std::string yaml =
      "group: g\n"
      "defaults:\n"
      "  metric: attention_tflops\n"
      "  tolerance: 5%\n"
      "  source: test\n"
      "  scenario: {cluster: {gpu: {preset: h100-sxm, attention_efficiency: 0.5, attention_backward_efficiency: 0.4,\n"
      "             attention_depth_overhead: 0, attention_backward_depth_overhead: 0, kernel_overhead: 0 s,\n"
      "             attention_softmax_overlap: 1},\n"
      "             nodes: 1, gpus_per_node: 1}}\n"
      "cases:\n"
      "  - {id: FWD, measured: 400, attention: {batch: 8, seq: 1024, heads: 33, head_dim: 128}}\n"
      "  - {id: BWD, measured: 400, attention: {batch: 8, seq: 1024, heads: 33, head_dim: 128, pass: backward}}\n"
      "  - {id: BOTH, measured: 400, attention: {batch: 8, seq: 1024, heads: 33, kv_heads: 3, head_dim: 128, pass: both}}\n"
      "  - {id: CAUSAL, measured: 400, attention: {batch: 8, seq: 1024, heads: 33, head_dim: 128, causal: true},\n"
      "     scenario: {cluster: {gpu: {attention_depth_overhead: 128}}}}\n"
      "  - {id: SOFTMAX, measured: 400, attention: {batch: 8, seq: 1024, heads: 33, head_dim: 128},\n"
      "     scenario: {cluster: {gpu: {attention_softmax_overlap: 0}}}}\n";
  const auto cases = validation::load_cases(case_dir("attention", yaml).string());
  REQUIRE(cases.size() == 5);
  CHECK(validation::run_case(cases[0], test::presets(), {}).predicted == Approx(989.4 * 0.5).epsilon(1e-9));
  CHECK(validation::run_case(cases[1], test::presets(), {}).predicted == Approx(989.4 * 0.4).epsilon(1e-9));
  CHECK(validation::run_case(cases[2], test::presets(), {}).predicted ==
        Approx(989.4 * 3.5 / (1 / 0.5 + 2.5 / 0.4)).epsilon(1e-9));
  CHECK(validation::run_case(cases[3], test::presets(), {}).predicted == Approx(989.4 * 0.5 * 32 / 44).epsilon(1e-9));
  // With the softmax after the matmuls: each score's 4 x 128 FLOPs at 989.4 x 0.5 TFLOP/s, then
  // its exponential at 16 per SM per clock on 132 SMs at 1.83 GHz (above, hidden beside them).
  CHECK(validation::run_case(cases[4], test::presets(), {}).predicted ==
        Approx(512.0 / (512.0 / (989.4 * 0.5) + 1e12 / (16.0 * 132 * 1.83e9))).epsilon(1e-9));
  CHECK_THAT(error_of("attention-pass", std::string(yaml).replace(yaml.find("pass: backward"), 14, "pass: sideways")),
             Contains("cases.yaml.cases[1].attention.pass: 'sideways' is not one of forward, backward, both"));
  CHECK_THAT(error_of("attention-seq", std::string(yaml).replace(yaml.find("seq: 1024"), 9, "seq: -1")),
             Contains("attention.seq"));
  CHECK_THAT(error_of("attention-key", std::string(yaml).replace(yaml.find("head_dim: 128}}\n  - {id: BWD"), 13, "head_dims: 1")),
             Contains("head_dims"));
}
