// Issue 7 speed target: 10,000 Monte Carlo trials of a 54-day run on 16,384 GPUs (the Llama 3
// 405B scenario and failure rates: ~470 interruptions per trial) in under 10 s. The run's
// tokens are set so that a trial lasts about 54 days of wall time; the step simulations that
// build the run model (healthy, 1-3 failed cables) and the interval search are timed apart.
#include <cstdio>

#include "bench/bench_support.hpp"
#include "core/presets.hpp"
#include "failures/reliability.hpp"
#include "topology/spec.hpp"

using namespace wallsim;
using namespace wallsim::bench;

int main() {
  const std::string dir = WALLSIM_SOURCE_DIR;
  const Presets presets(dir + "/data");
  // 7.2T tokens at the healthy step time are ~47 days of work, ~54 days of wall time at the
  // ~87 % goodput these rates give; the sync checkpoint interval is searched.
  std::vector<std::string> sets = kLlama405bEarlierPlan;  // the workload the target was set on
  sets.push_back("run.tokens=7.2T");
  Scenario s = load_scenario(dir + "/data/scenarios/llama3-405b-16kxh100.yaml", sets, presets);
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("flow", "bench");
  failures::ReliabilityOptions o;
  o.network = net.get();
  o.trials = 100;
  o.blast_radius = false;
  auto t0 = Clock::now();
  const auto r = failures::analyze_run(s, plan, t, o);
  std::printf("run model and interval search (flow steps, %zu intervals x %d trials): %.2f s; interval %.0f s\n",
              r.searched.size(), o.search_trials < o.trials ? o.search_trials : o.trials, seconds_since(t0),
              r.stats.interval.value());
  t0 = Clock::now();
  const auto stats = failures::simulate_run(r.model, r.stats.interval, 10000, 1);
  const double wall = seconds_since(t0);
  std::printf("  10,000 trials: %.2f +- %.2f days, %.1f interruptions, goodput %.4f\n", stats.days.mean,
              stats.days.ci95, stats.interruptions.mean, stats.goodput.mean);
  report("10,000 trials of a 54-day run on 16,384 GPUs", wall, "s", 10.0);
  return 0;
}
