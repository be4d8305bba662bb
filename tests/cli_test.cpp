// End-to-end: the wallsim binary as a user runs it.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("wallsim-cli-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

Result run(const std::string& args) {
  const fs::path out = scratch() / "stdout", err = scratch() / "stderr";
  const std::string cmd = "WALLSIM_DATA='" + wallsim::test::source_path("data") + "' '" +
                          WALLSIM_BIN + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace

TEST_CASE("cli topo prints the metrics of a spec string", "[cli]") {
  const Result r = run("topo 'fat-tree:k=4,bandwidth=400 Gb/s,latency=1 us'");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Contains("endpoints       16"));
  CHECK_THAT(r.out, Contains("switches        20"));
  CHECK_THAT(r.out, Contains("diameter        6 hops"));
  CHECK_THAT(r.out, Contains("bisection       400 GB/s per direction (closed form)"));
}

TEST_CASE("cli topo --json has the SPEC keys", "[cli]") {
  const fs::path json = scratch() / "topo.json";
  const Result r = run("topo 'torus:dims=4x4,bandwidth=50 GB/s' --quiet --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  CHECK(r.out.empty());
  const auto j = nlohmann::json::parse(slurp(json));
  for (const char* key : {"endpoints", "switches", "links", "diameter_hops", "avg_hops",
                          "bisection_bandwidth_Bps", "path_diversity"}) {
    CHECK(j.contains(key));
  }
  CHECK(j["endpoints"] == 16);
  CHECK(j["diameter_hops"] == 4);
  // 4x4 torus: 2 cut planes x 4 links x 50 GB/s.
  CHECK(j["bisection_bandwidth_Bps"].get<double>() == Approx(400e9));
}

TEST_CASE("cli topo exports links CSV, GraphML and DOT", "[cli]") {
  const fs::path csv = scratch() / "links.csv", gml = scratch() / "g.graphml", dot = scratch() / "g.dot";
  const Result r = run("topo 'ring:n=4,bandwidth=400 Gb/s,latency=2 us' --quiet --links '" + csv.string() +
                       "' --graphml '" + gml.string() + "' --dot '" + dot.string() + "'");
  REQUIRE(r.code == 0);
  const std::string links = slurp(csv);
  CHECK_THAT(links, StartsWith("id,from,to,bandwidth_Bps,latency_s\n"));
  CHECK_THAT(links, Contains("0,ep0,ep1,5e+10,2e-06\n"));
  CHECK(std::count(links.begin(), links.end(), '\n') == 1 + 8);
  CHECK_THAT(slurp(gml), Contains("<graphml"));
  CHECK_THAT(slurp(gml), Contains("bandwidth_Bps"));
  CHECK_THAT(slurp(dot), Contains("digraph"));
}

TEST_CASE("cli topo on a bundled scenario, with a route and a failed link", "[cli]") {
  const std::string scenario = "'" + wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml") + "'";
  const Result r = run("topo " + scenario + " --route 0,1023 --flow-key 5");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("endpoints       1024"));
  CHECK_THAT(r.out, Contains("route 0,1023    gpu0 -["));
  // Flow key 5 crosses leaf0 -[3101]-> spine13; with that cable failed it takes another spine.
  REQUIRE_THAT(r.out, Contains("gpu0 -[1]-> leaf0 -[3101]-> spine13"));
  const Result f = run("topo " + scenario + " --route 0,1023 --flow-key 5 --fail-link 3101");
  REQUIRE(f.code == 0);
  CHECK_THAT(f.out, Contains("gpu0 -[1]-> leaf0 -["));
  CHECK_THAT(f.out, !Contains("spine13"));
  CHECK_THAT(f.out, Contains("-> gpu1023"));
  // GPUs do not forward: with its only rail cable failed, gpu0 cannot leave its node.
  const Result cut = run("topo " + scenario + " --route 0,1023 --fail-link 1");
  CHECK(cut.code == 2);
  CHECK_THAT(cut.err, Contains("no route from gpu0 to gpu1023"));
}

TEST_CASE("cli presets lists presets with their sources", "[cli]") {
  const Result r = run("presets gpus");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("h100-sxm"));
  CHECK_THAT(r.out, Contains("source: [V] nc-212"));
  CHECK_THAT(r.out, Contains("references:"));
  CHECK(run("presets").code == 0);
  const Result bad = run("presets gpu");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("unknown kind 'gpu' (did you mean 'gpus'?)"));
}

TEST_CASE("cli bad input: one line naming the key, exit 2, no output file", "[cli]") {
  const fs::path json = scratch() / "never.json";
  fs::remove(json);
  auto check_bad = [&](const std::string& args, const std::string& message) {
    const Result r = run(args + " --json '" + json.string() + "'");
    INFO(args);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains(message));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(json));
  };
  check_bad("topo 'fat-tree:k=4,bandwidth=400 Gbs'", "fat-tree.bandwidth: unknown unit 'Gbs'");
  check_bad("topo 'fat-tree:k=4,bandwidth=400 Gb/s,radix=8'", "fat-tree.radix: give either k or radix");
  check_bad("topo 'clos:nodes=6,gpus_per_node=8,nodes_per_leaf=4,bandwidth=50 GB/s,scale_up_bandwidth=450 GB/s'",
            "clos.nodes_per_leaf: 4 does not divide nodes 6");
  const std::string scenario = "'" + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml") + "'";
  check_bad("topo " + scenario + " --set cluster.gpu=h100", "cluster.gpu: unknown gpus preset 'h100'");
  check_bad("topo " + scenario + " --set cluster.gpuz=1", "cluster.gpuz: unknown key (did you mean 'gpu'?)");
  check_bad("topo " + scenario + " --set cluster.nodes=3", "cluster.scale_out: missing");
  check_bad("topo 'ring:n=4,bandwidth=1 GB/s' --route 0,9", "--route: endpoint 9 does not exist");
  check_bad("topo 'fat-tree:k=4,bandwidth=1 GB/s' --fail-node edge0 --fail-node edge1 --route 0,4",
            "no route from ep0 to ep4");
  check_bad("topo missing.yaml", "missing.yaml: no such scenario file");
  check_bad("topo", "TOPOLOGY is required");
}
