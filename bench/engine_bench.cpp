// Issue 20's speed targets for the event engine (engine/simulate.hpp running the step program
// of parallelism/step_program.hpp, one rank per rank class, every transfer a flow of one
// solver): `run --network flow` of Llama 3 70B on 1,024 H100 under 2 s; Llama 3 405B on
// 16,384 H100 under 30 s and 4 GiB; a DeepSeek-V3-like MoE (EP 64) on 2,048 GPUs under 60 s.
// Each is timed from the scenario file to the simulated step (load, plan, fabric, program,
// classes, simulation) and printed with the program's size, its classes, and the step time
// beside the composed step's.
#include <cstdio>
#include <string>

#include "bench/bench_support.hpp"
#include "core/scenario.hpp"
#include "engine/simulate.hpp"
#include "engine/step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/step_program.hpp"
#include "topology/spec.hpp"

using namespace wallsim;
using namespace wallsim::bench;

namespace {

double run_once(const Presets& presets, const Scenario& s, bool flow) {
  const auto t0 = Clock::now();
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto prog = parallelism::step_program(*s.model, plan);
  const hardware::GpuModel gpu(s.cluster.gpu, {.precision = hardware::gemm_precision(plan.fp8(), plan.fp8_blockwise)});
  engine::SimulateOptions o;
  o.flow = flow;
  o.classes = true;
  if (s.cluster.scale_out) o.flows_per_connection = static_cast<std::uint32_t>(s.cluster.scale_out->flows_per_connection);
  o.compute_time = [&gpu](const parallelism::ProgramOp& op, std::uint32_t) { return gpu.time(op.kernel); };
  if (s.cluster.gpu.sms > 0) o.dp_sms = [&](std::uint32_t g) { return engine::nccl_sms(s.cluster, prog, t, g); };  // as `run`
  const auto r = engine::simulate(prog, t, o);
  const double wall = seconds_since(t0);
  std::size_t ops = 0;
  for (const auto& rank : prog.ranks) ops += rank.ops.size();
  const auto net = collectives::NetworkModel::build(flow ? "flow" : "analytic", "bench");
  std::string composed = "refused: the plan runs on the event engine only";  // DualPipe, FP8 dispatch, ...
  if (plan.event_engine_only().empty()) {
    char text[64];
    std::snprintf(text, sizeof text, "%.4f s", engine::simulate_step(s, plan, t, engine::step_options(net.get())).step_time.value());
    composed = text;
  }
  std::printf("  %s (%s): step %.4f s (composed step %s); %zu ranks in %zu classes, %zu ops, %zu transfers, %zu flow events\n",
              s.name.c_str(), flow ? "flow" : "analytic", r.makespan.value(), composed.c_str(), prog.ranks.size(),
              r.classes.count(), ops, r.transfers, r.flow.events);
  (void)presets;
  return wall;
}

double run_file(const Presets& presets, const std::string& file, bool flow, const std::vector<std::string>& sets = {}) {
  const auto t0 = Clock::now();
  const Scenario s = load_scenario(file, sets, presets);
  const double load = seconds_since(t0);
  return load + run_once(presets, s, flow);
}

}  // namespace

int main() {
  const std::string dir = WALLSIM_SOURCE_DIR;
  const Presets presets(dir + "/data");
  const std::string scenarios = dir + "/data/scenarios/";
  for (const char* small : {"tiny-8gpu", "llama3-8b-32xh100"}) {
    const double s = run_file(presets, scenarios + small + ".yaml", true);
    std::printf("  %-50s %10.3f s (no target)\n", small, s);
  }
  report("event engine: llama3-70b on 1,024 H100, flow network", run_file(presets, scenarios + "llama3-70b-1024xh100.yaml", true),
         "s", 2.0);
  report("event engine: llama3-405b on 16,384 H100, flow network",
         run_file(presets, scenarios + "llama3-405b-16kxh100.yaml", true, kLlama405bEarlierPlan), "s", 30.0);
  std::printf("  (the plan the target was set on: vpp 2, ZeRO-1, full recompute, one flow per connection)\n");
  report("event engine: llama3-405b as published, flow network",
         run_file(presets, scenarios + "llama3-405b-16kxh100.yaml", true), "s", 30.0);
  std::printf("  (the bundled scenario: one-layer chunks, ZeRO-2, no recompute, 16 flows per connection)\n");
  report("peak resident memory so far (405B the largest)", peak_rss_mib(), "MiB", 4096.0);
  // DeepSeek-V3's shapes (data/models.yaml) on 256 DGX H100 nodes, EP 64 across 8 nodes, PP 16
  // with DualPipe (its paper's plan; 32 micro-batches, DualPipe needs at least 2·pp), FP8
  // dispatch; full recompute, since the memory model does not count DeepSeek's own savings.
  const std::string ds =
      "name: deepseek-v3-like-2048\n"
      "cluster: {gpu: h100-sxm, nodes: 256, gpus_per_node: 8, scale_up: {preset: nvswitch-h100},\n"
      "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 16, spines: 16}}\n"
      "model: deepseek-v3\n"
      "training: {seq_len: 4096, global_batch: 4096, micro_batch: 1, precision: bf16, moe_dispatch: fp8}\n"
      "parallel: {tp: 1, pp: 16, dp: 128, ep: 64, schedule: dualpipe, zero: 1, recompute: full}\n";
  report("event engine: DeepSeek-V3-like MoE (EP 64) on 2,048 H100, flow",
         run_once(presets, parse_scenario(ds, "deepseek-v3-like.yaml", {}, presets), true), "s", 60.0);
  std::printf("  (DeepSeek-V3's shapes on H100s, batch 4,096, full recompute: the workload the target was set on)\n");
  report("event engine: DeepSeek-V3 as published, 2,048 H800, flow",
         run_file(presets, scenarios + "deepseek-v3-2048xh800.yaml", true), "s", 60.0);
  std::printf("  (the bundled scenario: batch 15,360, its recompute modules, FP8)\n");
  report("peak resident memory (all of the above)", peak_rss_mib(), "MiB", 4096.0);
  return 0;
}
