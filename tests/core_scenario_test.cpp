#include <catch2/catch.hpp>

#include <random>

#include "core/error.hpp"
#include "core/scenario.hpp"
#include "core/text.hpp"
#include "test_support.hpp"

using namespace wallsim;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Catch::Matchers::Equals;

namespace {
const char* kBase = R"(
name: t
cluster:
  gpu: h100-sxm
  nodes: 4
  gpus_per_node: 8
  scale_up: {bandwidth: 450 GB/s, latency: 1 us}
  scale_out: {topology: clos, bandwidth: 400 Gb/s, latency: 2 us, nodes_per_leaf: 2}
model: llama3-8b
training: {seq_len: 8192, global_batch: 64}
parallel: {tp: 8, pp: 1}
)";

Scenario load(const std::string& text, std::vector<std::string> sets = {}) {
  return parse_scenario(text, "t.yaml", sets, test::presets());
}
}  // namespace

TEST_CASE("core::scenario loads presets by name and inline mappings", "[core]") {
  const Scenario s = load(kBase);
  CHECK(s.name == "t");
  CHECK(s.cluster.gpu.name == "h100-sxm");
  // h100-sxm preset: 989.4 TFLOP/s dense BF16, 80 GB.
  CHECK(s.cluster.gpu.bf16_dense.value() == Approx(989.4e12));
  CHECK(s.cluster.gpu.memory.value() == Approx(80e9));
  CHECK(s.cluster.gpus() == 32);
  CHECK(s.cluster.scale_out->link.bandwidth.value() == Approx(50e9));
  REQUIRE(s.model);
  CHECK(s.model->layers == 32);
  CHECK(s.model->kv_heads == 8);
  CHECK(s.training->micro_batch == 1);
  CHECK(s.parallel->tp == 8);
  CHECK(s.parallel->dp == 0);  // derived later from the GPU count
}

TEST_CASE("core::scenario --set overrides any key", "[core]") {
  SECTION("a plain key") {
    CHECK(load(kBase, {"parallel.tp=4"}).parallel->tp == 4);
  }
  SECTION("a key inside a preset expands the preset and overrides one field") {
    const Scenario s = load(kBase, {"cluster.gpu.tdp=500 W"});
    CHECK(s.cluster.gpu.tdp.value() == Approx(500));
    CHECK(s.cluster.gpu.bf16_dense.value() == Approx(989.4e12));  // rest of the preset kept
  }
  SECTION("replacing a preset by name") {
    CHECK(load(kBase, {"cluster.gpu=a100-sxm-80gb"}).cluster.gpu.memory.value() == Approx(80e9));
    CHECK(load(kBase, {"model=llama3-70b"}).model->layers == 80);
  }
  SECTION("a flow mapping value") {
    CHECK(load(kBase, {"training={seq_len: 4096, global_batch: 8}"}).training->seq_len == 4096);
  }
  SECTION("malformed assignments") {
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp"}), Contains("--set: 'parallel.tp' is not KEY=VALUE"));
    CHECK_THROWS_WITH(load(kBase, {"name.x=1"}), Contains("'name' is the value 't', not a mapping"));
  }
}

TEST_CASE("core::scenario bad input names the key", "[core]") {
  SECTION("unknown key with a suggestion") {
    std::string bad = kBase;
    bad.replace(bad.find("training"), 8, "trainng");
    CHECK_THROWS_WITH(load(bad), Equals("trainng: unknown key (did you mean 'training'?)"));
    CHECK_THROWS_WITH(load(kBase, {"parallel.tpp=2"}),
                      Equals("parallel.tpp: unknown key (did you mean 'tp'?)"));
  }
  SECTION("malformed unit") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.scale_up.bandwidth=450 GB"}),
                      StartsWith("cluster.scale_up.bandwidth: '450 GB' is a size, not a bandwidth"));
  }
  SECTION("missing preset with a suggestion") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.gpu=h100"}),
                      StartsWith("cluster.gpu: unknown gpus preset 'h100' (did you mean 'h100-sxm'?)"));
  }
  SECTION("non-dividing dimension") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.scale_up.domain=12"}),
                      StartsWith("cluster.scale_up.domain: 12 does not divide the cluster's 32 GPUs"));
  }
  SECTION("kv_heads must divide heads") {
    CHECK_THROWS_WITH(load(kBase, {"model.kv_heads=5"}),
                      StartsWith("model.kv_heads: 5 does not divide heads 32"));
  }
  SECTION("missing required key") {
    CHECK_THROWS_WITH(load(kBase, {"training={seq_len: 4096}"}),
                      Equals("training.global_batch: missing (required)"));
  }
  SECTION("a GEMM tile that is not rows x columns") {
    for (const char* tile : {"256", "256x", "x128", "256x128x2", "0x128", "ax128"}) {
      INFO(tile);
      CHECK_THROWS_WITH(load(kBase, {std::string("cluster.gpu={preset: h100-sxm, gemm_tile: ") + tile + "}"}),
                        StartsWith("cluster.gpu.gemm_tile: '" + std::string(tile) + "' is not a tile like 256x128"));
    }
    CHECK_NOTHROW(load(kBase, {"cluster.gpu={preset: h100-sxm, gemm_tile: 128x64}"}));
  }
  SECTION("not a number") {
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp=eight"}), StartsWith("parallel.tp: 'eight' is not"));
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp=0"}), StartsWith("parallel.tp: must be a positive"));
  }
  SECTION("YAML syntax error names the line") {
    CHECK_THROWS_WITH(load("name: x\ncluster: [1,\n"), StartsWith("t.yaml:"));
  }
  SECTION("a mapping used as a key (found by fuzz_scenario)") {
    CHECK_THROWS_WITH(load("cluster: dgx-h100-su\ntraining: {seq_len: 8192, {interval: auto}}\n"),
                      Equals("training: a key must be a plain name, not a list or mapping"));
  }
  SECTION("every message is one line") {
    try {
      load(kBase, {"cluster.gpu=h100"});
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("core::text did_you_mean and edit distance", "[core]") {
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
  const std::vector<std::string> keys = {"bandwidth", "latency", "nodes"};
  CHECK(did_you_mean("bandwdth", keys) == " (did you mean 'bandwidth'?)");
  CHECK(did_you_mean("zzzzzz", keys).empty());
}

TEST_CASE("core::scenario property: random key paths never crash the loader", "[core][property]") {
  const std::vector<std::string> keys = {"cluster", "gpu", "nodes", "scale_up", "bandwidth",
                                         "model", "parallel", "tp", "x", "training"};
  const std::vector<std::string> values = {"1", "0", "-3", "400 Gb/s", "h100-sxm", "{a: 1}",
                                           "[1, 2]", "''", "1e99", "llama3-8b"};
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1500; ++i) {
    std::string key = keys[rng() % keys.size()];
    for (int d = static_cast<int>(rng() % 3); d > 0; --d) key += "." + keys[rng() % keys.size()];
    const std::string set = key + "=" + values[rng() % values.size()];
    try {
      (void)load(kBase, {set});
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
  }
}
