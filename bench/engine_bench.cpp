// Issue 20's speed targets for the event engine (engine/simulate.hpp running the step program
// of parallelism/step_program.hpp, every transfer a flow of one solver): `run --network flow`
// of Llama 3 70B on 1,024 H100 under 2 s. Prints the measured figure beside the target, the
// program's size and the step time next to today's composed step's. Every rank is simulated
// (rank classes are not built yet), so Llama 3 405B on 16,384 H100 (16x the ranks) is not run.
#include <cstdio>
#include <string>

#include "bench/bench_support.hpp"
#include "engine/simulate.hpp"
#include "engine/step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/step_program.hpp"
#include "topology/spec.hpp"

using namespace wallsim;
using namespace wallsim::bench;

namespace {

double run_once(const Presets& presets, const std::string& file, bool flow) {
  const auto t0 = Clock::now();
  const Scenario s = load_scenario(file, {}, presets);
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto prog = parallelism::step_program(*s.model, plan);
  const hardware::GpuModel gpu(s.cluster.gpu, {}, plan.fp8());
  engine::SimulateOptions o;
  o.flow = flow;
  o.classes = true;
  o.compute_time = [&gpu](const parallelism::ProgramOp& op, std::uint32_t) { return gpu.time(op.kernel); };
  const auto r = engine::simulate(prog, t, o);
  const double wall = seconds_since(t0);
  std::size_t ops = 0;
  for (const auto& rank : prog.ranks) ops += rank.ops.size();
  const auto net = collectives::NetworkModel::build(flow ? "flow" : "analytic", "bench");
  const auto composed = engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  std::printf("  %s (%s): step %.4f s (composed step %.4f s); %zu ranks in %zu classes, %zu ops, %zu transfers, %zu flow events\n",
              s.name.c_str(), flow ? "flow" : "analytic", r.makespan.value(), composed.step_time.value(), prog.ranks.size(),
              r.classes.count(), ops, r.transfers, r.flow.events);
  return wall;
}

}  // namespace

int main() {
  const std::string dir = WALLSIM_SOURCE_DIR;
  const Presets presets(dir + "/data");
  for (const char* small : {"tiny-8gpu", "llama3-8b-32xh100"}) {
    const double s = run_once(presets, dir + "/data/scenarios/" + small + ".yaml", true);
    std::printf("  %-50s %10.3f s (no target)\n", small, s);
  }
  report("event engine: llama3-70b on 1,024 H100, flow network", run_once(presets, dir + "/data/scenarios/llama3-70b-1024xh100.yaml", true),
         "s", 2.0);
  report("peak resident memory so far", peak_rss_mib(), "MiB", 4096.0);
  std::printf("  llama3-405b on 16,384 H100: not run (every rank simulated: needs rank classes)\n");
  return 0;
}
