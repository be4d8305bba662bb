// Every preset parses, and every number in data/ carries its source beside it.
#include <catch2/catch.hpp>

#include <cctype>

#include "core/config.hpp"
#include "core/io.hpp"
#include "core/scenario.hpp"
#include "test_support.hpp"
#include "topology/spec.hpp"

using namespace wallsim;

namespace {
// A scalar that starts with a digit is a number and must sit in {value: ..., source: ...}.
void check_sourced(const YAML::Node& n, const std::string& path, std::vector<std::string>& bad) {
  if (n.IsMap()) {
    if (n["value"] && n["source"]) return;
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      if (key == "description" || key == "notes") continue;  // prose, not figures
      check_sourced(kv.second, path + "." + kv.first.as<std::string>(), bad);
    }
  } else if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i) check_sourced(n[i], path + "[" + std::to_string(i) + "]", bad);
  } else if (n.IsScalar() && !n.Scalar().empty() && std::isdigit(static_cast<unsigned char>(n.Scalar()[0]))) {
    bad.push_back(path + " = " + n.Scalar());
  }
}
}  // namespace

TEST_CASE("data: every number in a preset names its source", "[data]") {
  for (auto kind : all_preset_kinds()) {
    const std::string file = test::source_path("data/" + preset_kind_name(kind) + ".yaml");
    YAML::Node root = parse_yaml(read_text_file(file), file);
    std::vector<std::string> bad;
    check_sourced(root["presets"], preset_kind_name(kind), bad);
    INFO(file);
    CHECK(bad == std::vector<std::string>{});
    REQUIRE(root["references"]);
  }
}

TEST_CASE("data: every preset parses", "[data]") {
  const Presets& p = test::presets();
  for (const auto& info : p.list(PresetKind::kGpus)) {
    INFO(info.name);
    const GpuSpec g = parse_gpu(Config(YAML::Node(info.name), "gpu"), p);
    CHECK(g.memory.value() > 0.0);
    CHECK(g.tdp.value() > 0.0);
  }
  for (const auto& info : p.list(PresetKind::kLinks)) {
    INFO(info.name);
    CHECK(parse_link(Config(YAML::Node(info.name), "link"), p).bandwidth.value() > 0.0);
  }
  for (const auto& info : p.list(PresetKind::kModels)) {
    INFO(info.name);
    const ModelSpec m = parse_model(Config(YAML::Node(info.name), "model"), p);
    CHECK(m.published_params > 0.0);
  }
  for (const auto& info : p.list(PresetKind::kClusters)) {
    INFO(info.name);
    const ClusterSpec c = parse_cluster(Config(YAML::Node(info.name), "cluster"), p);
    if (c.gpu.cores == 0) {
      const auto t = topology::build_cluster(c);
      CHECK(t.num_endpoints() == static_cast<std::size_t>(c.gpus()));
    }
  }
}

TEST_CASE("data: bundled scenarios load and build", "[data]") {
  for (const char* s : {"tiny-8gpu", "llama3-70b-1024xh100", "llama3-405b-16kxh100", "llama3-70b-256xgb200"}) {
    INFO(s);
    const Scenario sc = load_scenario(test::source_path(std::string("data/scenarios/") + s + ".yaml"),
                                      {}, test::presets());
    CHECK(topology::build_cluster(sc.cluster).num_endpoints() ==
          static_cast<std::size_t>(sc.cluster.gpus()));
  }
}
