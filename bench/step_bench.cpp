// Issue 5 speed targets: `run` of Llama 3 70B on 1,024 H100 with the flow network under 2 s;
// Llama 3 405B on 16,384 H100 (TP8 PP16 DP128) with the flow network under 30 s and 4 GiB;
// `search` over every valid plan of Llama 3 70B on 1,024 GPUs with the analytic network
// under 10 s. Each time covers loading the scenario, building the fabric and simulating.
#include <cstdio>
#include <string>

#include "bench/bench_support.hpp"
#include "engine/search.hpp"
#include "topology/spec.hpp"

using namespace wallsim;
using namespace wallsim::bench;

namespace {
double run_once(const Presets& presets, const std::string& file, const char* network,
                const std::vector<std::string>& sets = {}) {
  const auto t0 = Clock::now();
  const Scenario s = load_scenario(file, sets, presets);
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build(network, "bench");
  const auto r = engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  const double wall = seconds_since(t0);
  std::printf("  %s (%s): step %.3f s, MFU %.1f %%\n", s.name.c_str(), network, r.step_time.value(), 100 * r.mfu);
  return wall;
}
}  // namespace

int main() {
  const std::string dir = WALLSIM_SOURCE_DIR;
  const Presets presets(dir + "/data");
  report("run llama3-70b on 1,024 H100, flow network", run_once(presets, dir + "/data/scenarios/llama3-70b-1024xh100.yaml", "flow"), "s", 2.0);
  report("run llama3-405b on 16,384 H100, flow network", run_once(presets, dir + "/data/scenarios/llama3-405b-16kxh100.yaml", "flow", kLlama405bEarlierPlan), "s", 30.0);
  report("peak resident memory so far", peak_rss_mib(), "MiB", 4096.0);
  const auto t0 = Clock::now();
  const Scenario s = load_scenario(dir + "/data/scenarios/llama3-70b-1024xh100.yaml", {}, presets);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "bench");
  const auto res = engine::search_plans(s, t, engine::step_options(net.get()), false);
  const double wall = seconds_since(t0);
  std::printf("  search: %zu enumerated, %zu valid, %zu dropped for memory, %zu simulated\n", res.evaluated,
              res.valid, res.dropped_memory, res.plans.size());
  report("search llama3-70b on 1,024 GPUs, analytic network", wall, "s", 10.0);
  return 0;
}
