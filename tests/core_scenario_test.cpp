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
  SECTION("a scale-up domain that is not a multiple of the node") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.scale_up.domain=12"}),
                      StartsWith("cluster.scale_up.domain: must be a multiple of gpus_per_node 8"));
  }
  SECTION("a scale-up domain that does not divide the job: the last is partial") {
    CHECK(load(kBase, {"cluster.scale_up.domain=24"}).cluster.scale_up_domain == 24);
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

TEST_CASE("core::config duplicate keys are errors naming the key and both lines", "[core]") {
  SECTION("at the top: yaml-cpp keeps both pairs and a lookup finds the first") {
    // model on line 2 and again on line 4: llama3-8b would run without a word.
    CHECK_THROWS_WITH(parse_yaml("name: a\nmodel: llama3-8b\nx: 1\nmodel: llama3-70b\n", "d.yaml"),
                      Equals("d.yaml:4: 'model' is given twice (lines 2 and 4); YAML would keep only the first"));
  }
  SECTION("inside a mapping, named by its path") {
    CHECK_THROWS_WITH(parse_yaml("cluster:\n  nodes: 1\n  gpu: x\n  nodes: 2\n", "d.yaml"),
                      Equals("d.yaml:4: 'cluster.nodes' is given twice (lines 2 and 4); YAML would keep only the first"));
  }
  SECTION("in a flow mapping on one line, and inside a list") {
    CHECK_THROWS_WITH(parse_yaml("t: {a: 1, a: 2}\n", "d.yaml"),
                      Equals("d.yaml:1: 't.a' is given twice; YAML would keep only the first"));
    CHECK_THROWS_WITH(parse_yaml("l:\n  - {b: 1}\n  - {b: 1, b: 2}\n", "d.yaml"),
                      StartsWith("d.yaml:3: 'l[1].b' is given twice"));
  }
  SECTION("in a scenario file and in a --set value") {
    std::string dup = kBase;
    dup += "model: llama3-70b\n";
    CHECK_THROWS_WITH(load(dup), Contains("'model' is given twice (lines 9 and 12)"));
    CHECK_THROWS_WITH(load(kBase, {"training={seq_len: 4096, global_batch: 8, global_batch: 16}"}),
                      StartsWith("--set training:1: 'global_batch' is given twice"));
  }
  SECTION("the same key in different mappings is fine") {
    CHECK_NOTHROW(parse_yaml("a: {x: 1}\nb: {x: 1}\nl: [{x: 1}, {x: 2}]\n", "d.yaml"));
  }
}

TEST_CASE("core::config nesting deeper than 64 levels is an error with the line", "[core]") {
  const auto nested = [](int depth) { return "x: " + std::string(depth, '[') + std::string(depth, ']') + "\n"; };
  // 63 lists below the top mapping: 64 levels.
  CHECK_NOTHROW(parse_yaml(nested(63), "n.yaml"));
  CHECK_THROWS_WITH(parse_yaml(nested(64), "n.yaml"), StartsWith("n.yaml:1: nesting too deep (more than 64 levels"));
  // Past yaml-cpp's own guard (its message is "bad file"), the same message; no stack overflow.
  CHECK_THROWS_WITH(parse_yaml(nested(100'000), "n.yaml"), StartsWith("n.yaml:1: nesting too deep"));
  std::string dashes = "x:\n  ";
  for (int i = 0; i < 5000; ++i) dashes += "- ";
  CHECK_THROWS_WITH(parse_yaml(dashes + "1\n", "n.yaml"), StartsWith("n.yaml:2: nesting too deep"));
}

TEST_CASE("core::config aliases that expand past a million nodes are an error", "[core]") {
  // Ten aliases of ten aliases, eight deep: 10^8 nodes when walked, a handful in memory.
  std::string y = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    y += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) y += (k ? ", " : "") + prev;
    y += "]\n";
  }
  CHECK_THROWS_WITH(parse_yaml(y, "b.yaml"), Contains("more than 1,000,000 YAML nodes"));
}

TEST_CASE("core::scenario unknown keys under a preset's sourced number are errors", "[core]") {
  // tdp of the h100-sxm preset is {value: 700 W, source: ...}: `vaule` merged beside it was dropped.
  CHECK_THROWS_WITH(load(kBase, {"cluster.gpu.tdp.vaule=500W"}),
                    Equals("cluster.gpu.tdp.vaule: unknown key (did you mean 'value'?)"));
  CHECK_THROWS_WITH(load(kBase, {"cluster.gpu={preset: h100-sxm, tdp: {vaule: 500 W}}"}),
                    Equals("cluster.gpu.tdp.vaule: unknown key (did you mean 'value'?)"));
  CHECK_THROWS_WITH(load(kBase, {"model.layerz=3"}), Equals("model.layerz: unknown key (did you mean 'layers'?)"));
  // The value itself may be set, its source kept.
  CHECK(load(kBase, {"cluster.gpu.tdp.value=500W"}).cluster.gpu.tdp.value() == Approx(500));
}

TEST_CASE("core::scenario zero, empty and out-of-range counts name the key", "[core]") {
  SECTION("an empty --set value is not 'absent'") {
    // It used to leave tp at its default 1, and the plan then blamed parallel.dp.
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp="}), StartsWith("parallel.tp: empty value"));
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp=  "}), StartsWith("parallel.tp: empty value"));
    CHECK(load(kBase, {"parallel.tp=null"}).parallel->tp == 1);  // null removes the key
  }
  SECTION("numbers past a long long are out of range, with the key's limit") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.nodes=9223372036854775807"}),
                      Equals("cluster.nodes: '9223372036854775807' is out of range (at most 16,777,216: the limit on "
                             "GPUs and parallel degrees)"));
    CHECK_THROWS_WITH(load(kBase, {"cluster.nodes=9223372036854775808"}),
                      StartsWith("cluster.nodes: '9223372036854775808' is out of range (at most 16,777,216"));
    CHECK_THROWS_WITH(load(kBase, {"cluster.nodes=1e300"}), StartsWith("cluster.nodes: '1e300' is out of range"));
  }
  SECTION("whole numbers are read exactly, not through a double") {
    // 2^53 + 1 is not a double; the limit message quotes it as written.
    CHECK_THROWS_WITH(load(kBase, {"training.global_batch=9007199254740993"}),
                      StartsWith("training.global_batch: '9007199254740993' is out of range (at most 16,777,216"));
  }
  SECTION("each count's limit") {
    CHECK_THROWS_WITH(load(kBase, {"training.global_batch=137439477248"}),
                      StartsWith("training.global_batch: '137439477248' is out of range (at most 16,777,216"));
    CHECK(load(kBase, {"training.global_batch=16777216"}).training->global_batch == 16'777'216);
    CHECK_THROWS_WITH(load(kBase, {"training.seq_len=16777217"}), StartsWith("training.seq_len: '16777217' is out of range"));
    CHECK_THROWS_WITH(load(kBase, {"model.layers=16385"}), StartsWith("model.layers: '16385' is out of range (at most 16,384"));
    CHECK_THROWS_WITH(load(kBase, {"parallel.tp=16777217"}), StartsWith("parallel.tp: '16777217' is out of range"));
    CHECK_THROWS_WITH(load(kBase, {"model.experts=65537"}), StartsWith("model.experts: '65537' is out of range"));
    CHECK_THROWS_WITH(load(kBase, {"model.shared_experts=4294967297"}), StartsWith("model.shared_experts: '4294967297' is out of range"));
    CHECK_THROWS_WITH(load(kBase, {"model.dense_layers=-1"}), StartsWith("model.dense_layers: '-1' must not be negative"));
  }
  SECTION("GPUs: nodes x gpus_per_node, checked") {
    // 2^21 nodes of 8 GPUs is 2^24: the limit itself.
    CHECK(load(kBase, {"cluster.nodes=2097152"}).cluster.gpus() == 16'777'216);
    CHECK_THROWS_WITH(load(kBase, {"cluster.nodes=2097153"}),
                      StartsWith("cluster.nodes: GPUs, nodes x gpus_per_node = 2,097,153 x 8 is more than 16,777,216"));
  }
  SECTION("zero is no count") {
    CHECK_THROWS_WITH(load(kBase, {"cluster.nodes=0"}), StartsWith("cluster.nodes: must be a positive whole number, not '0'"));
    CHECK_THROWS_WITH(load(kBase, {"cluster.storage={bandwidth: 1 TB/s, nodes: 0}"}), StartsWith("cluster.storage.nodes: must be a positive"));
  }
}

TEST_CASE("core::text quoted clips long values to a prefix and a length", "[core]") {
  CHECK(quote_value("abc") == "'abc'");
  CHECK(quote_value(std::string(40, '1')) == "'" + std::string(40, '1') + "'");
  CHECK(quote_value(std::string(5'000'000, '1')) == "'" + std::string(40, '1') + "\u2026' (5,000,000 characters)");
  CHECK(quote_value("a\nb") == "'a?b'");  // one line
  // A multi-byte character is not cut in two: 39 'x' then 'é' (2 bytes) straddles byte 40.
  CHECK(quote_value(std::string(39, 'x') + "\u00e9" + std::string(10, 'y')) ==
        "'" + std::string(39, 'x') + "\u2026' (51 characters)");
  SECTION("wherever a value is quoted: a 5 MB number") {
    try {
      load(kBase, {"training.global_batch=" + std::string(5'000'000, '1')});
      FAIL("no error");
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK(what.size() < 200);
      CHECK_THAT(what, StartsWith("training.global_batch: '1111111111"));
      CHECK_THAT(what, Contains("(5,000,000 characters) is out of range"));
    }
  }
  SECTION("a 5 MB key is clipped too") {
    try {
      load(kBase, {std::string(5'000'000, 'k') + "=1"});
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).size() < 400);
    }
  }
}

TEST_CASE("core::scenario cluster.slow_gpus: a list, or a fraction picked the same way everywhere", "[core]") {
  const auto list = load(kBase, {"cluster.slow_gpus={gpus: [17, 3], speed: 0.8}"}).cluster;
  REQUIRE(list.slow_gpus);
  CHECK(list.slow_gpus->gpus == std::vector<long long>{3, 17});
  CHECK(list.speed_of(3) == 0.8);
  CHECK(list.speed_of(4) == 1.0);
  // A quarter of 32 GPUs: 8, distinct, in range, the same on every load; another seed picks others.
  const auto a = load(kBase, {"cluster.slow_gpus={fraction: 0.25, speed: 0.5}"}).cluster.slow_gpus->gpus;
  const auto b = load(kBase, {"cluster.slow_gpus={fraction: 0.25, speed: 0.5}"}).cluster.slow_gpus->gpus;
  const auto c = load(kBase, {"cluster.slow_gpus={fraction: 0.25, speed: 0.5, seed: 7}"}).cluster.slow_gpus->gpus;
  CHECK(a.size() == 8);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
  CHECK(a.front() >= 0);
  CHECK(a.back() < 32);
  // A fraction too small for one GPU still picks one.
  CHECK(load(kBase, {"cluster.slow_gpus={fraction: 0.001, speed: 0.5}"}).cluster.slow_gpus->gpus.size() == 1);
}
