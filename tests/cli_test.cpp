// End-to-end: the wallsim binary as a user runs it.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <map>
#include <set>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/text.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using Result = wallsim::test::CliResult;

std::string slurp(const fs::path& p) { return wallsim::test::slurp(p.string()); }

fs::path scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("wallsim-cli-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

/// Runs wallsim with `args`; "__MPI__N FLAGS|ENV|ARGS" runs it under `mpirun -np N FLAGS`
/// with ENV (run_mpi below). A timeout guards against a hung job.
Result run(const std::string& args) {
  const fs::path out = scratch() / "stdout", err = scratch() / "stderr";
  std::string launcher, rest = args, env;
  if (args.rfind("__MPI__", 0) == 0) {
    const auto bar1 = args.find('|'), bar2 = args.find('|', bar1 + 1);
    // Open MPI's own allocations at MPI_Finalize (in its dlopen'ed components) read as leaks
    // to LeakSanitizer: under mpirun the sanitizer build checks everything but leaks.
    launcher = "ASAN_OPTIONS=detect_leaks=0 timeout 300 mpirun --oversubscribe -x ASAN_OPTIONS -np " +
               args.substr(7, bar1 - 7) + " ";
    env = args.substr(bar1 + 1, bar2 - bar1 - 1);
    rest = args.substr(bar2 + 1);
    if (!env.empty()) launcher += "-x " + env.substr(0, env.find('=')) + " ";
  }
  return wallsim::test::run_captured(
      "WALLSIM_DATA='" + wallsim::test::source_path("data") + "' " + env + " " + launcher + "'" + WALLSIM_BIN + "' " + rest,
      out.string(), err.string());
}

/// Bad input: exit code 2, the message on stderr (in one line when `one_line`), and the
/// --json file never written.
void check_bad_input(const std::string& args, const std::string& message, bool one_line) {
  const fs::path json = scratch() / "never.json";
  fs::remove(json);
  const Result r = run(args + " --json '" + json.string() + "'");
  INFO(args);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains(message));
  if (one_line) CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(json));
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
  // Link ids follow the order cables are added (cable c = links 2c, 2c + 1): 1,024 GPU-NVSwitch
  // cables, 1,024 GPU-leaf cables, then 64 leaves x 16 spines. So gpu0 -> leaf0 is 2 x 1024,
  // leaf0 -> spine13 is 2 x (2048 + 13) and spine13 -> leaf63 the reverse of 2 x (2048 + 63 x 16
  // + 13). Flow key 5 takes spine13; with that cable failed it takes another spine.
  REQUIRE_THAT(r.out, Contains("gpu0 -[2048]-> leaf0 -[4122]-> spine13 -[6139]-> leaf63 -[4095]-> gpu1023"));
  const Result f = run("topo " + scenario + " --route 0,1023 --flow-key 5 --fail-link 4122");
  REQUIRE(f.code == 0);
  CHECK_THAT(f.out, Contains("gpu0 -[2048]-> leaf0 -["));
  CHECK_THAT(f.out, !Contains("spine13"));
  CHECK_THAT(f.out, Contains("-> gpu1023"));
  // GPUs do not forward: with its only rail cable failed, gpu0 cannot leave its node.
  const Result cut = run("topo " + scenario + " --route 0,1023 --fail-link 2048");
  CHECK(cut.code == 2);
  CHECK_THAT(cut.err, Contains("no route from gpu0 to gpu1023"));
}

TEST_CASE("cli presets lists presets with their sources", "[cli]") {
  const Result r = run("presets gpus");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("h100-sxm"));
  CHECK_THAT(r.out, Contains("source: [V] nc-212"));
  CHECK_THAT(r.out, Contains("references:"));
  // Each value beside its source, and a preset the roofline cannot run is marked as such.
  std::istringstream lines(r.out);
  bool peak = false;
  for (std::string line; std::getline(lines, line);) {
    peak = peak || (line.find("bf16_dense") != std::string::npos && line.find("312 TFLOP/s") != std::string::npos &&
                    line.find("source: [V] nv-a100-ds") != std::string::npos);
  }
  CHECK(peak);
  // Every bundled GPU is complete for the roofline and power models.
  CHECK_THAT(r.out, !Contains("INCOMPLETE"));
  const auto j = nlohmann::json::parse(run("presets gpus --json -").out);
  for (const auto& p : j["gpus"]["presets"]) {
    INFO(p["name"]);
    CHECK(p["missing"].empty());
    for (const auto& fd : p["fields"]) CHECK(fd.contains("source"));
  }
  {
    // A preset lacking the model's fields is marked, naming them all (a copy of data/ with one more GPU).
    const fs::path data = scratch() / "data-incomplete";
    fs::remove_all(data);
    fs::copy(wallsim::test::source_path("data"), data, fs::copy_options::recursive);
    std::ofstream(data / "gpus.yaml", std::ios::app)
        << "  half-known:\n    description: a GPU with its datasheet only\n"
           "    bf16_dense: {value: 100 TFLOP/s, source: \"[A] test\"}\n"
           "    memory: {value: 80 GB, source: \"[A] test\"}\n"
           "    memory_bandwidth: {value: 2 TB/s, source: \"[A] test\"}\n"
           "    tdp: {value: 400 W, source: \"[A] test\"}\n";
    const fs::path out = scratch() / "stdout", err = scratch() / "stderr";
    const Result half = wallsim::test::run_captured("WALLSIM_DATA='" + data.string() + "' '" + WALLSIM_BIN + "' presets gpus",
                                                    out.string(), err.string());
    REQUIRE(half.code == 0);
    CHECK_THAT(half.out, Contains("INCOMPLETE: no gemm_efficiency, attention_efficiency, memory_efficiency, idle_power"));
    fs::remove_all(data);
  }
  CHECK(run("presets").code == 0);
  const Result bad = run("presets gpu");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("unknown kind 'gpu' (did you mean 'gpus'?)"));
}

TEST_CASE("cli bad input: one line naming the key, exit 2, no output file", "[cli]") {
  auto check_bad = [](const std::string& args, const std::string& message) {
    check_bad_input(args, message, true);
  };
  check_bad("topo 'fat-tree:k=4,bandwidth=400 Gbs'", "fat-tree.bandwidth: unknown unit 'Gbs'");
  check_bad("topo 'fat-tree:k=4,bandwidth=400 Gb/s,radix=8'", "fat-tree.radix: give either k or radix");
  check_bad("topo 'clos:nodes=6,gpus_per_node=8,domain=12,bandwidth=50 GB/s,scale_up_bandwidth=450 GB/s'",
            "clos.domain: 12 must be a multiple of gpus_per_node 8");
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

TEST_CASE("cli collective prints nccl-tests rows that equal the closed form", "[cli][collectives]") {
  // Ring all_reduce on 8 endpoints of one switch: 2(n-1) alpha + 2(n-1)/n S/B, where alpha is
  // the two 1 us links of a path and B = 100 GB/s.
  const std::string sw = "'switch:n=8,bandwidth=100 GB/s,latency=1 us'";
  const Result r = run("collective " + sw + " --op all_reduce --bytes 1GiB --algo ring --network analytic");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("size") && Contains("count") && Contains("type") && Contains("redop") &&
                        Contains("algbw") && Contains("busbw"));
  const double s = 1073741824.0, expect_us = (2 * 7 * 2e-6 + 2.0 * 7 / 8 * s / 100e9) * 1e6;
  std::ostringstream want;
  want.setf(std::ios::fixed);
  want.precision(2);
  want << expect_us;
  CHECK_THAT(r.out, Contains("1073741824") && Contains("268435456") && Contains(want.str()));

  const fs::path json = scratch() / "coll.json", csv = scratch() / "coll.csv";
  const Result sweep = run("collective " + sw + " --op all_gather --sweep 8B:8KiB --network flow --json '" +
                           json.string() + "' --csv '" + csv.string() + "'");
  REQUIRE(sweep.code == 0);
  const auto j = nlohmann::json::parse(slurp(json));
  REQUIRE(j["rows"].size() == 11);  // 8 B, 16 B, ..., 8 KiB
  CHECK(j["rows"][0]["bytes"] == 8.0);
  CHECK(j["rows"][10]["bytes"] == 8192.0);
  for (const auto& row : j["rows"]) {
    // busbw = algbw (n-1)/n for all_gather, as nccl-tests reports it.
    CHECK(row["busbw_Bps"].get<double>() == Approx(row["algbw_Bps"].get<double>() * 7 / 8));
    CHECK(row["time_s"].get<double>() > 0.0);
  }
  const std::string table = slurp(csv);
  CHECK(std::count(table.begin(), table.end(), '\n') == 12);  // header + 11 rows
}

TEST_CASE("cli collective on a scenario opens its cluster's flows per connection", "[cli][collectives]") {
  // 16 GPUs, one a node, two leaves of 8, 8 spines; each rank sends 1 GiB to the next of
  // 0, 8, 1, 9, ...: 8 transfers each way between the leaves over 8 uplinks. One flow each,
  // hashed by ECMP, two share an uplink somewhere: the step takes 2 S/B (as the engine's test).
  // Cut into 256 flows each they spread over the spines: within 1.25 S/B.
  const fs::path yaml = scratch() / "fpc.yaml";
  std::ofstream(yaml) << "cluster: {gpu: h100-sxm, nodes: 16, gpus_per_node: 1, scale_out: {topology: clos, nodes_per_leaf: 8,"
                         " spines: 8, bandwidth: 50 GB/s}}\nmodel: llama3-8b\ntraining: {global_batch: 16, seq_len: 8192}\n";
  auto time = [&](int q) {
    const Result r = run("collective '" + yaml.string() + "' --set cluster.scale_out.flows_per_connection=" + std::to_string(q) +
                         " --op send_recv --group 0,8,1,9,2,10,3,11,4,12,5,13,6,14,7,15 --bytes '1 GiB' --json -");
    REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["flows_per_connection"] == q);
    return j["rows"][0]["time_s"].get<double>();
  };
  const double sb = 1073741824.0 / 50e9;
  CHECK(time(1) >= 2.0 * sb);
  CHECK(time(256) <= 1.25 * sb);
}

TEST_CASE("cli flows replays flows and writes finish times and paths", "[cli][collectives]") {
  // Two flows out of ep0 share its 1 GB/s uplink: each moves 1 GB at 0.5 GB/s after 2 us of
  // latency; the third starts at 1 s alone on other links.
  const fs::path in = scratch() / "flows.csv", out = scratch() / "flows-out.csv";
  std::ofstream(in) << "id,src,dst,bytes,start_s\na,0,1,1e9,0\nb,0,2,1e9,0\nc,3,2,5e8,3\n";
  const Result r = run("flows 'switch:n=4,bandwidth=1 GB/s,latency=1 us' --flows '" + in.string() +
                       "' --out '" + out.string() + "'");
  REQUIRE(r.code == 0);
  const auto lines = wallsim::split(slurp(out), '\n');
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0] == "id,src,dst,bytes,start_s,finish_s,links");
  auto finish = [&](std::size_t i) { return std::stod(wallsim::split(lines[i], ',')[5]); };
  CHECK(finish(1) == Approx(2e-6 + 2.0).epsilon(1e-9));
  CHECK(finish(2) == Approx(2e-6 + 2.0).epsilon(1e-9));
  CHECK(finish(3) == Approx(3.0 + 2e-6 + 0.5).epsilon(1e-9));
  CHECK(wallsim::split(wallsim::split(lines[1], ',')[6], ' ').size() == 2);  // ep0 -> switch -> ep1
}

TEST_CASE("cli collective and flows bad input", "[cli][collectives]") {
  auto check_bad = [](const std::string& args, const std::string& message) {
    check_bad_input(args, message, false);
  };
  const std::string sw = "collective 'switch:n=8,bandwidth=100 GB/s' ";
  check_bad(sw + "--op allreduce --bytes 1", "--op: unknown op 'allreduce' (did you mean 'all_reduce'?)");
  check_bad(sw + "--op all_reduce --bytes 1 --algo rings", "--algo: unknown algorithm 'rings' (did you mean 'ring'?)");
  check_bad(sw + "--op all_reduce --bytes 1Gx", "--bytes: unknown unit 'Gx' in '1Gx'");
  check_bad(sw + "--op all_reduce --bytes 1GiB --group 0,9", "--group: endpoint 9 does not exist");
  check_bad(sw + "--op all_reduce --bytes 1GiB --algo mesh2d", "mesh2d needs a whole 2-D torus or mesh");

  const fs::path bad = scratch() / "bad-flows.csv";
  std::ofstream(bad) << "id,src,dst,bytes,start_s\na,0,1,100,0\nb,0,1,lots,0\n";
  check_bad("flows 'switch:n=4,bandwidth=1 GB/s' --flows '" + bad.string() + "'",
            bad.string() + ":3: bytes 'lots' is not a non-negative number");
  const fs::path ok = scratch() / "cut-flows.csv";
  std::ofstream(ok) << "id,src,dst,bytes,start_s\nx,0,4,100,0\n";
  check_bad("flows 'fat-tree:k=4,bandwidth=1 GB/s' --fail-node edge0 --flows '" + ok.string() + "'",
            "flow x: no route from ep0 to ep4");
}

TEST_CASE("cli run prints the summary and writes the SPEC JSON keys", "[cli][engine]") {
  const std::string scenario = "'" + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml") + "'";
  const fs::path json = scratch() / "run.json";
  const Result r = run("run " + scenario + " --network analytic --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(slurp(json));
  for (const char* key : {"step_time_s", "tokens_per_s", "mfu", "hfu", "model_tflops_per_gpu",
                          "hardware_tflops_per_gpu", "breakdown_s", "memory", "energy", "power", "bytes_moved"}) {
    INFO(key);
    CHECK(j.contains(key));
  }
  for (const char* key : {"compute", "exposed_comm", "bubble", "other"}) CHECK(j["breakdown_s"].contains(key));
  // The breakdown of a stage adds up to the step.
  const auto& b = j["breakdown_s"];
  CHECK(b["compute"].get<double>() + b["exposed_comm"].get<double>() + b["bubble"].get<double>() +
            b["other"].get<double>() ==
        Approx(j["step_time_s"].get<double>()).epsilon(1e-9));
  CHECK(j["memory"]["fits"] == true);
  CHECK(j["mfu"].get<double>() <= j["hfu"].get<double>());
  // The event engine's rank classes: the 8 GPUs of one node run one program, one class.
  CHECK(j["rank_classes"]["count"] == 1);
  CHECK(j["rank_classes"]["exact"] == true);
  const Result text = run("run " + scenario + " --network analytic");
  CHECK_THAT(text.out, Contains("step time") && Contains("MFU / HFU") && Contains("memory per GPU"));
  // Selective recompute names its modules when they are not the default.
  CHECK_THAT(text.out, Contains("recompute selective, "));
  const Result modules = run("run " + scenario + " --network analytic --set 'parallel.recompute_modules=[layernorm, core_attn]'");
  CHECK_THAT(modules.out, Contains("recompute selective [core_attn, layernorm], "));
}

TEST_CASE("cli run and search mark ZeRO-3 plans as unvalidated", "[cli]") {
  // The DeepSpeed ZeRO-3 rows of the validation table miss by +45 % to +308 %: a ZeRO-3 plan
  // says so in run's text and JSON and in search's rows; other plans carry no caveat.
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const std::string z3 = " --network analytic --set parallel.tp=4 --set parallel.dp=2 --set parallel.zero=3";
  const Result j3 = run("run " + scenario + z3 + " --json -");
  REQUIRE(j3.code == 0);
  const auto caveats = nlohmann::json::parse(j3.out)["caveats"];
  REQUIRE(caveats.size() == 1);
  CHECK_THAT(caveats[0].get<std::string>(), StartsWith("zero3_unvalidated"));
  CHECK(nlohmann::json::parse(run("run " + scenario + " --network analytic --json -").out)["caveats"].empty());
  CHECK_THAT(run("run " + scenario + z3).out, Contains("caveat") && Contains("ZeRO-3 throughput is not validated"));
  const Result s = run("search " + scenario + " --network analytic --top 100");
  REQUIRE(s.code == 0);
  std::istringstream rows(s.out);
  int marked = 0, zero3 = 0;
  for (std::string line; std::getline(rows, line);) {
    zero3 += line.find("zero 3") != std::string::npos;
    marked += line.find("(ZeRO-3: unvalidated)") != std::string::npos;
  }
  CHECK(zero3 > 0);
  CHECK(marked == zero3);
}

TEST_CASE("cli run --json reports memory per stage and a plan within 2 % of capacity as borderline", "[cli]") {
  // Llama 3 8B on pp 2 (tp 4): stage 0 holds the embedding (128,256 x 4,096) and layers 0-15,
  // stage 1 layers 16-31, the final norm and the head; a layer is 218,112,000 parameters
  // (attention 4096 x (4096 + 2 x 1024 + 4096), SwiGLU 3 x 4096 x 14,336, two norms of 4,096:
  // 32 of them, both embeddings and the final norm make Llama 3 8B's 8,030,261,248), each
  // stage's weights 2 bytes per parameter over tp 4.
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const std::string plan = " --network analytic --set parallel.tp=4 --set parallel.pp=2 --json -";
  const Result r = run("run " + scenario + plan);
  REQUIRE(r.code == 0);
  const auto mem = nlohmann::json::parse(r.out)["memory"];
  REQUIRE(mem["stages"].size() == 2);
  const double layer = 218'112'000.0, embedding = 128'256.0 * 4096;
  CHECK(mem["stages"][0]["weights_bytes"].get<double>() == Approx(2.0 * (embedding + 16 * layer) / 4).epsilon(1e-12));
  CHECK(mem["stages"][1]["weights_bytes"].get<double>() == Approx(2.0 * (16 * layer + embedding + 4096) / 4).epsilon(1e-12));
  double peak = 0.0;
  for (const auto& s : mem["stages"]) {
    CHECK(s["total_bytes"].get<double>() ==
          Approx(s["weights_bytes"].get<double>() + s["gradients_bytes"].get<double>() + s["optimizer_bytes"].get<double>() +
                 s["activations_bytes"].get<double>() + s["buffers_bytes"].get<double>()).epsilon(1e-12));
    peak = std::max(peak, s["total_bytes"].get<double>());
  }
  CHECK(mem["peak_bytes_per_gpu"].get<double>() == peak);
  CHECK(mem["borderline"] == false);
  // The GPU's memory set 1 % above, 1 % below and 3 % below the peak: borderline and fits;
  // borderline and runs although over; refused (exit 2).
  auto with = [&](double capacity) {
    return run("run " + scenario + plan + " --set cluster.gpu.memory=" + std::to_string(static_cast<long long>(capacity)) + "B");
  };
  const Result above = with(peak * 1.01), below = with(peak * 0.99), refused = with(peak * 0.97);
  REQUIRE(above.code == 0);
  REQUIRE(below.code == 0);
  const auto a = nlohmann::json::parse(above.out)["memory"], b = nlohmann::json::parse(below.out)["memory"];
  CHECK(a["borderline"] == true);
  CHECK(a["fits"] == true);
  CHECK(b["borderline"] == true);
  CHECK(b["fits"] == false);
  CHECK(refused.code == 2);
  CHECK_THAT(refused.err, Contains("the plan does not fit"));
  CHECK_THAT(run("run " + scenario + " --network analytic --set parallel.tp=4 --set parallel.pp=2 --set cluster.gpu.memory=" +
                 std::to_string(static_cast<long long>(peak * 0.99)) + "B").out,
             Contains("borderline: 1.0 % over the capacity"));
}

TEST_CASE("cli run bad input: a plan that does not fit says how much it needs", "[cli][engine]") {
  const std::string scenario = "'" + wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml") + "'";
  const fs::path json = scratch() / "never-run.json";
  fs::remove(json);
  const Result r = run("run " + scenario + " --set parallel.tp=1 --set parallel.pp=1 --set parallel.dp=1024 "
                       "--set parallel.zero=0 --set training.global_batch=1024 --json '" + json.string() + "'");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("the plan does not fit") && Contains("GiB per GPU") && Contains("h100-sxm has"));
  CHECK_FALSE(fs::exists(json));
  const Result bad = run("run " + scenario + " --set parallel.tp=6");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("parallel.tp"));
}

TEST_CASE("cli search ranks plans with the SPEC JSON keys", "[cli][engine]") {
  const std::string scenario = "'" + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml") + "'";
  const fs::path json = scratch() / "search.json";
  const Result r = run("search " + scenario + " --top 3 --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(slurp(json));
  CHECK(j["plans"].size() == 3);
  CHECK(j["evaluated"].get<int>() >= j["valid"].get<int>());
  CHECK(j["plans"][0].contains("parallel"));
  CHECK(j["plans"][0]["step_time_s"].get<double>() <= j["plans"][1]["step_time_s"].get<double>());
}

TEST_CASE("cli validate meets the accuracy targets on the published cases", "[cli][validation]") {
  // Issue targets: Megatron-LM's layer times within 15 %; nccl-tests busbw within 5 %;
  // activation memory equal to Korthikanti et al.'s closed forms. Megatron-LM's whole steps
  // (median 5 %, worst 15 % once) were met only while the A100 was fitted on them; fitted on
  // kernels alone, the model runs them 10-36 % fast, which the README reports (not asserted).
  const fs::path json = scratch() / "validate.json";
  const Result r = run("validate --quiet --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(slurp(json));
  REQUIRE(j["cases"].size() >= 40);
  const auto& g = j["groups"];
  CHECK(g["megatron"]["cases"].get<int>() >= 20);
  CHECK(g["megatron-layer"]["max_abs_error"].get<double>() <= 0.15);
  CHECK(g["nccl"]["max_abs_error"].get<double>() <= 0.05);
  CHECK(g["memory"]["max_abs_error"].get<double>() <= 1e-6);
  // Each fitted kernel curve reproduces its source points within the error data/gpus.yaml
  // states for it (GEMM: H100 worst 19.9 % on its 280 rows, these 8 of them within 8 %; B200 26 %,
  // these within 6 %; A100 22.6 %; attention: the worst fitted point per GPU).
  const std::map<std::string, double> stated = {{"kernel-h100", 0.08},      {"attention-h100", 0.12},
                                                {"attention-a100", 0.07},   {"attention-mi300x", 0.20},
                                                {"attention-b200", 0.01},   {"kernel-b200", 0.06},
                                                {"kernel-mi300x", 0.01},    {"kernel-mi325x", 0.02},
                                                {"kernel-a100", 0.23},      {"kernel-h800", 0.08}};
  for (const auto& c : j["cases"]) {
    INFO(c["id"]);
    if (const auto it = stated.find(c["group"].get<std::string>()); it != stated.end() && c["fit"].get<bool>()) {
      CHECK(std::abs(c["error"].get<double>()) <= it->second);
    }
    CHECK(std::abs(c["predicted"].get<double>() / c["measured"].get<double>() - 1.0 - c["error"].get<double>()) < 1e-9);
  }
  // Error by precision: each case's, and every precision's summary over its cases.
  std::map<std::string, int> counted;
  for (const auto& c : j["cases"]) counted[c["precision"].get<std::string>()] += 1;
  const std::map<std::string, std::string> want = {
      {"KH100-MAMF-FP8", "fp8"}, {"KH100-MAMF-BF16", "16-bit"}, {"NC-H100-RING", ""}, {"TT-8B-128-BF16", "16-bit"},
      {"TT-8B-128-FP8", "fp8"},  {"E2E-NEMO-H100-LLAMA3-8B", "fp8"}, {"N21-1", "16-bit"}, {"N21-BW-CKPT-1T", ""}};
  for (const auto& c : j["cases"]) {
    if (const auto it = want.find(c["id"].get<std::string>()); it != want.end()) CHECK(c["precision"] == it->second);
  }
  REQUIRE(j["precisions"].size() == 2);
  for (const char* q : {"16-bit", "fp8"}) CHECK(j["precisions"][q]["cases"].get<int>() == counted[q]);
  CHECK(counted["fp8"] >= 10);
  check_bad_input("validate /nonexistent-dir", "/nonexistent-dir: is not a directory of validation cases", true);
  check_bad_input("validate --only NOPE", "--only: selects no case", true);
  const fs::path dir = scratch() / "bad-engine";
  fs::create_directories(dir);
  std::ofstream(dir / "x.yaml") << "group: x\ncases:\n  - {id: X, metric: step_time_s, measured: 1, tolerance: 10%, source: s,\n"
                                   "     engine: fast, scenario: {cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8},\n"
                                   "     model: llama3-8b, training: {global_batch: 8}}}\n";
  check_bad_input("validate '" + dir.string() + "'", "x.yaml.cases[0].engine: 'fast' is not an engine: events or composed", true);
  const fs::path fitdir = scratch() / "bad-fit";
  fs::create_directories(fitdir);
  std::ofstream(fitdir / "x.yaml") << "group: x\ncases:\n  - {id: X, metric: step_time_s, measured: 1, tolerance: 10%, source: s, fit: true,\n"
                                      "     scenario: {cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 8},\n"
                                      "     model: llama3-8b, training: {global_batch: 8}}}\n";
  check_bad_input("validate '" + fitdir.string() + "'",
                  "x.yaml.cases[0].fit: a step or layer time checks the calibrated parameters and cannot be a fit case", true);
}

TEST_CASE("cli the README's validation table is the one wallsim validate generates", "[cli][validation]") {
  const fs::path md = scratch() / "validation.md";
  REQUIRE(run("validate --quiet --markdown '" + md.string() + "'").code == 0);
  const std::string readme = slurp(wallsim::test::source_path("README.md"));
  const std::string begin = "<!-- validation table: scripts/update-readme -->\n", end = "<!-- end of validation table -->";
  const auto a = readme.find(begin), b = readme.find(end);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  CHECK(readme.substr(a + begin.size(), b - a - begin.size()) == slurp(md));
}

TEST_CASE("cli reliability reports the run keys with confidence intervals", "[cli][failures]") {
  const fs::path json = scratch() / "reliability.json";
  const Result r = run("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
                       " --trials 100 --seed 3 --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("goodput"));
  CHECK_THAT(r.out, Contains("faulty_gpu"));
  CHECK_THAT(r.out, Contains("leaf switch"));
  const auto j = nlohmann::json::parse(slurp(json));
  for (const char* k : {"days", "interruptions", "goodput", "checkpoint_interval_s", "trials"}) CHECK(j.contains(k));
  CHECK(j["trials"] == 100);
  CHECK(j["interruptions_by_cause"]["faulty_gpu"].contains("ci95"));
  CHECK(j["lost_hours_by_cause"]["planned"].contains("mean"));
  // 64 GPUs: 14 bytes per parameter of Llama 3 8B; every GPU writes a shard (ZeRO 1).
  CHECK(j["checkpoint_bytes"].get<double>() == Approx(14.0 * 8.03e9).epsilon(0.01));
  // The goodput is work over wall time: never above 1, and the Monte Carlo agrees with itself.
  CHECK(j["goodput"].get<double>() <= 1.0);
  const auto again = run("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
                         " --trials 100 --seed 3 --json -");
  CHECK(nlohmann::json::parse(again.out) == j);
  // `run` adds SPEC's run keys when the scenario has run.failures.
  const auto step = nlohmann::json::parse(
      run("run " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") + " --json -").out);
  CHECK(step["run"].contains("goodput"));
  CHECK(step["run"].contains("checkpoint_interval_s"));
  // Its steps run under --power-cap too: a capped GPU's slower steps take more days (the same
  // seed gives the same days when the cap is left out).
  const auto capped = nlohmann::json::parse(
      run("run " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") + " --power-cap 300W --json -").out);
  CHECK(capped["step_time_s"].get<double>() > step["step_time_s"].get<double>());
  CHECK(capped["run"]["days"].get<double>() > step["run"]["days"].get<double>());
  // A plan only the event engine runs (gradients reduced once a step) gets its run too.
  const Result fsdp = run("run " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
                          " --set parallel.zero=2 --set parallel.grad_reduce=step --json -");
  REQUIRE(fsdp.code == 0);
  CHECK(nlohmann::json::parse(fsdp.out)["run"].contains("goodput"));
}

TEST_CASE("cli reliability on bad input exits 2 and names the key", "[cli][failures]") {
  check_bad_input("reliability " + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml"), "run", true);
  check_bad_input("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
                      " --set run.failures.spare_nodes=-2",
                  "run.failures.spare_nodes", true);
  check_bad_input("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
                      " --trials 0",
                  "--trials", true);
  check_bad_input("reliability --blast-radius 'torus:dims=4x4'", "torus.bandwidth", true);
  check_bad_input("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") + " --engine eventful",
                  "--engine", true);
}

TEST_CASE("cli reliability --engine events runs the steps and the asynchronous write on the event engine", "[cli][failures]") {
  // The healthy step is the event engine's (as `run --engine events` gives it), and the write's
  // flows run beside the step's (engine::simulate's background flows, tested there).
  const std::string scenario = wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml");
  const Result r = run("reliability " + scenario +
                       " --engine events --set run.checkpoint.mode=async --set run.checkpoint.snapshot_bandwidth=50GB/s"
                       " --trials 20 --no-blast-radius");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("while writing"));
  const auto step = nlohmann::json::parse(run("run " + scenario + " --engine events --json -").out);
  char healthy[64];
  std::snprintf(healthy, sizeof healthy, "%.4g s healthy", step["step_time_s"].get<double>());
  CHECK_THAT(r.out, Contains(healthy));
}

TEST_CASE("cli sweep runs the product of the varied keys", "[cli][sweep]") {
  const fs::path csv = scratch() / "sweep.csv", svg = scratch() / "sweep.svg", json = scratch() / "sweep.json";
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const Result r = run("sweep " + scenario + " --vary 'cluster.scale_up.bandwidth=100GB/s:400GB/s:x2'" +
                       " --vary 'training.micro_batch=1,2' --csv '" + csv.string() + "' --svg '" + svg.string() +
                       "' --json '" + json.string() + "'");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("6 points"));
  // 100, 200, 400 GB/s (x2 up to 400) by micro-batch 1, 2: the first key varies slowest.
  const auto j = nlohmann::json::parse(slurp(json));
  REQUIRE(j["points"].size() == 6);
  CHECK(j["points"][0]["cluster.scale_up.bandwidth"] == "100 GB/s");
  CHECK(j["points"][1]["training.micro_batch"] == "2");
  CHECK(j["points"][5]["cluster.scale_up.bandwidth"] == "400 GB/s");
  // More scale-up bandwidth never slows a TP-8 step down.
  CHECK(j["points"][0]["step_time_s"].get<double>() > j["points"][2]["step_time_s"].get<double>());
  CHECK(j["points"][2]["step_time_s"].get<double>() > j["points"][4]["step_time_s"].get<double>());
  const std::string table = slurp(csv);
  CHECK_THAT(table, StartsWith("cluster.scale_up.bandwidth,training.micro_batch,step_time_s,mfu,"));
  CHECK(std::count(table.begin(), table.end(), '\n') == 7);
  const std::string picture = slurp(svg);
  CHECK_THAT(picture, StartsWith("<svg"));
  CHECK_THAT(picture, Contains("step time (s)"));
  CHECK_THAT(picture, Contains("200 GB/s"));
  CHECK(std::count(picture.begin(), picture.end(), 'M') >= 2);  // one line per micro-batch
}

TEST_CASE("cli sweep on bad input exits 2 and names the key", "[cli][sweep]") {
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  check_bad_input("sweep " + scenario + " --vary 'cluster.scale_up.bandwith=100GB/s'", "did you mean 'bandwidth'", true);
  check_bad_input("sweep " + scenario + " --vary 'cluster.scale_up.bandwidth=100 W'", "cluster.scale_up.bandwidth", true);
  check_bad_input("sweep " + scenario + " --vary 'cluster.scale_up.bandwidth=400GB/s:100GB/s:x2'", "does not grow", true);
  check_bad_input("sweep " + scenario + " --vary 'cluster.scale_up.bandwidth=1GB/s:2TB/s:x2'", "ends in", true);
  check_bad_input("sweep " + scenario + " --vary nokey", "--vary", true);
  check_bad_input("sweep " + scenario + " --vary 'training.micro_batch=1,2' --metric speed", "--metric", true);
  const Result r = run("sweep " + scenario + " --vary 'training.micro_batch=1' --csv /nonexistent/dir/x.csv");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("/nonexistent/dir/x.csv"));
}

TEST_CASE("cli --progress draws on stderr only, and --quiet silences it", "[cli]") {
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const Result r = run("sweep " + scenario + " --vary 'training.micro_batch=1,2' --progress --json -");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.err, Contains("sweep ["));
  CHECK_THAT(r.err, Contains("100 %"));
  CHECK(nlohmann::json::parse(r.out)["points"].size() == 2);  // stdout is the JSON alone
  // A collective under the flow model reports its steps (an all-to-all on 16 endpoints: 15).
  const Result c = run("collective 'fat-tree:k=4,bandwidth=50GB/s' --op all_to_all --bytes 1MB --network flow --progress");
  REQUIRE(c.code == 0);
  CHECK_THAT(c.err, Contains("collective ["));
  CHECK_THAT(c.err, Contains("100 %"));
  CHECK_THAT(c.out, Contains("direct"));
  const Result q = run("search " + scenario + " --progress --quiet");
  CHECK(q.code == 0);
  CHECK(q.err.empty());
  CHECK(q.out.empty());
}

TEST_CASE("cli --csv writes the tables of run, search and reliability", "[cli]") {
  const fs::path csv = scratch() / "table.csv";
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  REQUIRE(run("run " + tiny + " --quiet --csv '" + csv.string() + "'").code == 0);
  std::string t = slurp(csv);
  CHECK_THAT(t, StartsWith("step_time_s,tokens_per_s,mfu,"));
  CHECK(std::count(t.begin(), t.end(), '\n') == 2);
  const auto j = nlohmann::json::parse(run("run " + tiny + " --json -").out);
  CHECK(std::stod(t.substr(t.find('\n') + 1)) == Approx(j["step_time_s"].get<double>()));
  REQUIRE(run("search " + tiny + " --quiet --top 3 --csv '" + csv.string() + "'").code == 0);
  t = slurp(csv);
  CHECK_THAT(t, StartsWith("rank,tp,pp,dp,cp,ep,vpp,micro_batch,zero,recompute,schedule,step_time_s"));
  CHECK(std::count(t.begin(), t.end(), '\n') == 4);
  REQUIRE(run("reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") +
              " --trials 20 --no-blast-radius --quiet --csv '" + csv.string() + "'")
              .code == 0);
  t = slurp(csv);
  CHECK_THAT(t, StartsWith("cause,interruptions,interruptions_ci95,lost_hours,lost_hours_ci95\nfaulty_gpu,"));
  CHECK(std::count(t.begin(), t.end(), '\n') == 20);  // header + 19 causes
}

TEST_CASE("cli run --trace writes Chrome trace events of every stage", "[cli][engine]") {
  const fs::path trace = scratch() / "trace.json";
  const std::string scenario = wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml");
  const Result r = run("run " + scenario + " --engine composed --json - --trace '" + trace.string() + "'");
  REQUIRE(r.code == 0);
  const double step = nlohmann::json::parse(r.out)["step_time_s"].get<double>();
  const auto j = nlohmann::json::parse(slurp(trace));
  REQUIRE(j.contains("traceEvents"));
  std::map<int, int> forwards, backwards;
  std::set<int> stages;
  double last = 0.0;
  for (const auto& e : j["traceEvents"]) {
    for (const char* k : {"name", "ph", "pid", "tid"}) REQUIRE(e.contains(k));
    if (e["ph"] == "M") {
      if (e["name"] == "process_name") stages.insert(e["pid"].get<int>());
      continue;
    }
    REQUIRE(e["ph"] == "X");
    REQUIRE(e.contains("ts"));
    REQUIRE(e.contains("dur"));
    const double ts = e["ts"].get<double>(), dur = e["dur"].get<double>();
    CHECK(ts >= 0.0);
    CHECK(dur > 0.0);
    last = std::max(last, ts + dur);
    const std::string name = e["name"];
    if (name.rfind("forward", 0) == 0) ++forwards[e["pid"].get<int>()];
    if (name.rfind("backward", 0) == 0) ++backwards[e["pid"].get<int>()];
  }
  // The last event ends with the step (microseconds); every stage runs each micro-batch
  // forward and backward once.
  CHECK(last == Approx(step * 1e6).epsilon(1e-9));
  CHECK(stages.size() == 4);  // pp 4
  CHECK(forwards.size() == 4);
  for (const auto& [stage, n] : forwards) {
    CHECK(n == forwards.begin()->second);
    CHECK(backwards[stage] == n);
  }
  CHECK_THAT(slurp(trace), Contains("DP reduce-scatter layer"));
}

TEST_CASE("cli --hdf5 files read back with h5py and h5dump, as the JSON says", "[cli][hdf5]") {
  const fs::path h5 = scratch() / "out.h5", json = scratch() / "out.json";
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const std::string pp4 = wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml");
  const std::string checker = wallsim::test::source_path("tests/scripts/check_hdf5.py");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"run", "run " + pp4},
      {"run", "run " + tiny},
      {"search", "search " + tiny + " --top 1000"},
      {"sweep", "sweep " + tiny + " --vary 'training.micro_batch=1,2' --vary power_cap=500W,700W"},
      {"reliability", "reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") + " --trials 50"},
      {"collective", "collective 'fat-tree:k=4,bandwidth=100Gb/s,latency=1us' --op all_reduce --sweep 1MiB:16MiB"},
  };
  for (const auto& [command, args] : cases) {
    INFO(args);
    fs::remove(h5);
    const Result r = run(args + " --quiet --json '" + json.string() + "' --hdf5 '" + h5.string() + "'");
    REQUIRE(r.code == 0);
    const int py = std::system(("/usr/bin/python3 '" + checker + "' " + command + " '" + h5.string() + "' '" +
                                json.string() + "' >'" + (scratch() / "py.out").string() + "' 2>&1")
                                   .c_str());
    INFO(slurp(scratch() / "py.out"));
    CHECK(py == 0);
    const int dump = std::system(("h5dump -H '" + h5.string() + "' >'" + (scratch() / "dump.out").string() + "'").c_str());
    CHECK(dump == 0);
    CHECK_THAT(slurp(scratch() / "dump.out"), Contains("GROUP \"summary\""));
  }
  // Bad input: an unwritable path is exit 2, naming it.
  const Result bad = run("run " + tiny + " --quiet --hdf5 /nonexistent/dir/x.h5");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("/nonexistent/dir/x.h5"));
}

TEST_CASE("cli --svg on run and search draws labelled charts", "[cli][svg]") {
  const fs::path svg = scratch() / "chart.svg";
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const std::string pp4 = wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml");
  REQUIRE(run("run " + pp4 + " --quiet --svg '" + svg.string() + "'").code == 0);
  std::string s = slurp(svg);
  CHECK_THAT(s, StartsWith("<svg"));
  for (const char* label : {"stage 0 (rank 0)", "stage 3 (rank 768)", "time in the step (s)", "achieved TFLOP/s",
                            "arithmetic intensity (FLOP per HBM byte)", "roofline", "qkv projection"}) {
    CHECK_THAT(s, Contains(label));
  }
  REQUIRE(run("search " + tiny + " --quiet --svg '" + svg.string() + "'").code == 0);
  s = slurp(svg);
  CHECK_THAT(s, Contains("Pareto front"));
  CHECK_THAT(s, Contains("energy per token (J)"));
  CHECK_THAT(s, Contains("step time (s)"));
}

TEST_CASE("cli sweep varies a failed link and the power cap", "[cli][sweep]") {
  const std::string scenario = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const Result r = run("sweep " + scenario + " --vary power_cap=350W,700W --vary fail_link=none,gpu0-nvswitch0 --json -");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["points"].size() == 4);
  // A lower cap slows the step; a GPU's only cable failed cuts it off (a row that says so).
  CHECK(j["points"][0]["step_time_s"].get<double>() > j["points"][2]["step_time_s"].get<double>());
  CHECK_THAT(j["points"][1]["note"].get<std::string>(), Contains("no route"));
  check_bad_input("sweep " + scenario + " --vary fail_link=gpu0-spine9", "--vary fail_link", true);
  check_bad_input("sweep " + scenario + " --vary fail_link=99999", "does not exist", true);
  check_bad_input("sweep " + scenario + " --vary power_cap=fast", "--vary power_cap", true);
}

namespace {

/// `wallsim ARGS` under mpirun with `ranks` processes (as root, with Open MPI's consent flags).
Result run_mpi(int ranks, const std::string& args, const std::string& env = "") {
  const std::string root = ::getuid() == 0 ? " --allow-run-as-root" : "";
  return run("__MPI__" + std::to_string(ranks) + root + "|" + env + "|" + args);
}

}  // namespace

TEST_CASE("cli under mpirun -np 1, 2 and 3 writes the JSON one process writes", "[cli][mpi]") {
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const std::vector<std::string> commands = {
      "search " + tiny + " --top 50",
      "sweep " + tiny + " --vary 'training.micro_batch=1,2,4' --vary power_cap=400W,700W",
      "reliability " + wallsim::test::source_path("data/scenarios/reliability-64gpu.yaml") + " --trials 300 --no-blast-radius",
      "validate --only nccl",
      // One composed step split over the ranks: each times its share of the concurrent groups' flows.
      "run " + wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml") + " --network flow --engine composed",
      // The event engine: every rank runs the program, the flows of one solver split over them.
      "run " + wallsim::test::source_path("data/scenarios/llama3-8b-32xh100.yaml") +
          " --engine events --network flow --set parallel.tp=2 --set parallel.pp=2 --set parallel.dp=8 --set parallel.sp=true",
  };
  for (const auto& c : commands) {
    INFO(c);
    const Result one = run(c + " --json -");
    REQUIRE(one.code == 0);
    REQUIRE(!one.out.empty());
    for (int n : {1, 2, 3}) {
      INFO("ranks " << n);
      const Result r = run_mpi(n, c + " --json -");
      INFO(r.err);
      REQUIRE(r.code == 0);
      CHECK(r.out == one.out);  // byte-identical, printed once
    }
  }
}

TEST_CASE("cli a rank that fails aborts the whole MPI job with its message", "[cli][mpi]") {
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml");
  const Result r = run_mpi(2, "search " + tiny + " --quiet", "WALLSIM_FAIL_RANK=1");
  CHECK(r.code != 0);
  CHECK_THAT(r.err, Contains("rank 1: internal error: failing as WALLSIM_FAIL_RANK asks"));
  // Bad input under mpirun is still exit 2 with the key named, said once (by rank 0), not per rank.
  const Result bad = run_mpi(3, "run " + tiny + " --set parallel.tp=3");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("parallel.tp"));
  const std::string said = "wallsim: error: parallel.tp";
  std::size_t times = 0;
  for (auto at = bad.err.find(said); at != std::string::npos; at = bad.err.find(said, at + 1)) ++times;
  CHECK(times == 1);
  CHECK(bad.err.find("rank 1") == std::string::npos);
}

TEST_CASE("cli sweep varies the scale-out topology kind", "[cli][sweep]") {
  // 1,024 GPUs: a Clos (the preset), a 3-level fat-tree of radix 32, an 8x8x16 torus and a
  // dragonfly of 32 groups; each kind reads its own keys and ignores the others'.
  const std::string scenario = wallsim::test::source_path("data/scenarios/llama3-70b-1024xh100.yaml");
  const Result r = run("sweep " + scenario +
                       " --vary cluster.scale_out.topology=clos,fat-tree,torus,dragonfly --set cluster.scale_out.radix=32"
                       " --set cluster.scale_out.dims=8x8x16 --set cluster.scale_out.p=4 --set cluster.scale_out.a=8"
                       " --set cluster.scale_out.h=4 --set cluster.scale_out.g=32 --json -");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["points"].size() == 4);
  for (const auto& p : j["points"]) {
    INFO(p.dump());
    CHECK(p["step_time_s"].get<double>() > 0.0);
  }
  // A key no kind knows is still an error with a suggestion.
  check_bad_input("run " + scenario + " --set cluster.scale_out.radx=32", "radx", true);
}

TEST_CASE("cli wafer prints the mesh, its collectives and the GEMM algorithms", "[cli][wafer]") {
  const std::string wse = wallsim::test::source_path("data/scenarios/wse3-mesh.yaml");
  const Result r = run("wafer " + wse + " --json -");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["mesh"]["x"] == 750);
  CHECK(j["mesh"]["routing_entries"] == 24);
  CHECK(j["collectives"]["row_allreduce_s"].get<double>() > 0.0);
  REQUIRE(j["gemm"].size() == 9);  // 3 sizes x 3 algorithms
  for (const auto& g : j["gemm"]) CHECK(g["valid"] == true);
  // --network flow simulates the collectives on the mesh; on a 16x12 piece of the wafer they
  // equal the closed forms.
  const auto flow = nlohmann::json::parse(
      run("wafer " + wse + " --set cluster.scale_out.dims=16x12 --network flow --gemm 64 --json -").out);
  for (const char* k : {"row_allreduce_s", "row_broadcast_s", "allreduce_2d_s"}) {
    CHECK(flow["collectives_flow"][k].get<double>() == Approx(flow["collectives"][k].get<double>()).epsilon(1e-9));
  }
  // Tiles of 2x2 cores (750x994 is even both ways; 4 divides neither).
  CHECK(run("wafer " + wse + " --tile 2 --quiet").code == 0);
  // Routers with 4 routes: Cannon and MeshGEMM rows say why they cannot run.
  const Result few = run("wafer " + wse + " --set cluster.gpu.routing_entries=4 --gemm 4096");
  REQUIRE(few.code == 0);
  CHECK_THAT(few.out, Contains("cannon    invalid: cannon needs 6 routes per router; the wafer's routers hold 4"));
  // A GPU cluster has no mesh; a tile that does not divide the mesh is bad input.
  check_bad_input("wafer " + wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml"), "cluster.gpu", true);
  check_bad_input("wafer " + wse + " --tile 4", "--tile", true);
  // The GPU-vs-wafer pair trains the same tokens per step; both run and report the same keys.
  const auto wafer_run = nlohmann::json::parse(run("run " + wallsim::test::source_path("data/scenarios/llama3-8b-4xcs3.yaml") + " --json -").out);
  const auto gpu_run = nlohmann::json::parse(run("run " + wallsim::test::source_path("data/scenarios/llama3-8b-32xh100.yaml") + " --json -").out);
  for (const auto* j : {&wafer_run, &gpu_run}) {
    CHECK((*j)["step_time_s"].get<double>() > 0.0);
    CHECK((*j)["energy"]["per_token_j"].get<double>() > 0.0);
    CHECK((*j)["memory"]["fits"] == true);
  }
  CHECK(wafer_run["tokens_per_s"].get<double>() * wafer_run["step_time_s"].get<double>() ==
        Approx(gpu_run["tokens_per_s"].get<double>() * gpu_run["step_time_s"].get<double>()));
}

TEST_CASE("cli run --engine events: the event engine gives the composed step where they must agree", "[cli]") {
  // One NVSwitch node, TP 8 only: nothing contends, so the event engine's step, MFU and bytes
  // equal the composed step's; its breakdown adds up to the step.
  const std::string tiny = wallsim::test::source_path("data/scenarios/tiny-8gpu.yaml") + " --set training.global_batch=8";
  const Result c = run("run " + tiny + " --json -");
  const Result e = run("run " + tiny + " --engine events --json -");
  REQUIRE(c.code == 0);
  REQUIRE(e.code == 0);
  const auto jc = nlohmann::json::parse(c.out), je = nlohmann::json::parse(e.out);
  CHECK(je["step_time_s"].get<double>() == Approx(jc["step_time_s"].get<double>()).epsilon(1e-9));
  CHECK(je["mfu"].get<double>() == Approx(jc["mfu"].get<double>()).epsilon(1e-9));
  CHECK(je["bytes_moved"]["scale_up"].get<double>() == Approx(jc["bytes_moved"]["scale_up"].get<double>()).epsilon(1e-12));
  for (const char* part : {"compute", "exposed_comm", "bubble", "other"}) {
    INFO(part);
    CHECK(je["breakdown_s"][part].get<double>() == Approx(jc["breakdown_s"][part].get<double>()).epsilon(1e-9).margin(1e-12));
  }
  const auto& b = je["breakdown_s"];
  CHECK(b["compute"].get<double>() + b["exposed_comm"].get<double>() + b["bubble"].get<double>() + b["other"].get<double>() ==
        Approx(je["step_time_s"].get<double>()).epsilon(1e-9));
  // FP8's forward-only and backward-only casts and eager PyTorch's kernels run the same in both.
  for (const char* set : {"training.precision=fp8", "training.kernels=eager"}) {
    INFO(set);
    const auto pc = nlohmann::json::parse(run("run " + tiny + " --set " + set + " --json -").out);
    const auto pe = nlohmann::json::parse(run("run " + tiny + " --set " + set + " --engine events --json -").out);
    CHECK(pe["step_time_s"].get<double>() == Approx(pc["step_time_s"].get<double>()).epsilon(1e-9));
    CHECK(pc["step_time_s"].get<double>() != Approx(jc["step_time_s"].get<double>()).epsilon(1e-3));
  }
  check_bad_input("run " + tiny + " --engine eventful", "--engine", true);
  // --trace from the event engine: each stage's first rank, its ops by stream, named as the
  // program names them, the pipeline's sends and receives on a lane of their own.
  const fs::path trace = scratch() / "events.trace.json";
  fs::remove(trace);
  const Result t = run("run " + tiny + " --set 'parallel={tp: 4, pp: 2, sp: true}' --engine events --quiet --trace '" +
                       trace.string() + "'");
  REQUIRE(t.code == 0);
  std::ifstream in(trace);
  const auto events = nlohmann::json::parse(in)["traceEvents"];
  std::set<std::string> lanes;
  std::map<int, int> per_lane;
  bool recv0 = false, send0 = false, tp = false;
  std::map<int, std::string> process;  // by pid (the rank shown): "stage S (rank R)"
  for (const auto& e : events) {
    if (e["ph"] == "M" && e["name"] == "process_name") process[e["pid"].get<int>()] = e["args"]["name"].get<std::string>();
  }
  for (const auto& e : events) {
    if (e["ph"] == "M" && e["name"] == "thread_name") lanes.insert(e["args"]["name"].get<std::string>());
    if (e["ph"] != "X") continue;
    ++per_lane[e["tid"].get<int>()];
    const auto name = e["name"].get<std::string>();
    const std::string& where = process.at(e["pid"].get<int>());
    CHECK(where == "stage " + std::string(where.rfind("stage 1", 0) == 0 ? "1" : "0") + " (rank " + std::to_string(e["pid"].get<int>()) + ")");
    recv0 = recv0 || (where.rfind("stage 1 ", 0) == 0 && name == "recv activation mb 0");
    send0 = send0 || (where.rfind("stage 0 ", 0) == 0 && name.rfind("send activation mb 0", 0) == 0);
    tp = tp || name.rfind("TP ", 0) == 0;
  }
  CHECK(lanes.count("pipeline sends and receives") == 1);
  CHECK(recv0);
  CHECK(send0);
  CHECK(tp);
  CHECK(per_lane[0] > 0);
  CHECK(per_lane[1] > 0);
  CHECK(per_lane[3] > 0);
}
