// The step engine: pipeline bubbles, overlap, power cap, against closed forms.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "collectives/network_model.hpp"
#include "engine/search.hpp"
#include "engine/step.hpp"
#include "failures/checkpoint.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/model_math.hpp"
#include "test_support.hpp"
#include "topology/spec.hpp"

using namespace wallsim;

namespace {

// Four GPUs on one very fast switch, a model whose head is small: stages are equal to ~1%
// (the LM head's GEMM over 8 vocabulary columns still takes one whole wave of tiles).
std::string pipe_scenario(const std::string& parallel, long long batch) {
  return "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, scale_up: {bandwidth: 1 PB/s, latency: 0 s}}\n"
         "model: {layers: 8, hidden: 4096, heads: 32, kv_heads: 8, ffn: 14336, vocab: 8}\n"
         "training: {seq_len: 4096, global_batch: " + std::to_string(batch) + "}\n" + parallel + "\n";
}

/// `search` over a scenario's cluster on the analytic network; the `check`ed plans (at least
/// one) were ranked with the step the event engine gives them.
engine::SearchResult search_and_compare(const Scenario& s, const std::function<bool(const parallelism::Plan&)>& check) {
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "n");
  auto res = engine::search_plans(s, t, engine::step_options(net.get()), false);
  std::size_t compared = 0;
  for (const auto& [plan, step] : res.plans) {
    if (!check(plan)) continue;
    ++compared;
    CHECK(step.step_time.value() == engine::simulate_step_events(s, plan, t, engine::step_options(net.get())).step_time.value());
  }
  CHECK(compared > 0);
  return res;
}

/// One GPU's shard of a layer under TP with sequence parallelism.
parallelism::Shard sp_shard(long long micro_batch, long long seq_len, int tp) {
  parallelism::Shard sh;
  sh.micro_batch = micro_batch;
  sh.seq_len = seq_len;
  sh.tp = tp;
  sh.sp = true;
  return sh;
}

engine::StepResult run(const std::string& text, const char* network = "analytic", Watts cap = {}) {
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build(network, "network");
  return engine::simulate_step(s, plan, t, engine::step_options(net.get(), cap));
}

}  // namespace

TEST_CASE("engine 1F1B bubble fraction is (p-1)/(m+p-1), GPipe the same, interleaving divides it by v", "[engine]") {
  for (int m : {4, 8, 16}) {
    const auto r = run(pipe_scenario("parallel: {pp: 4, schedule: 1f1b}", m));
    const double frac = r.bubble.value() / (r.bubble.value() + r.compute.value());
    INFO("m = " << m);
    CHECK(frac == Approx(3.0 / (m + 3.0)).margin(0.01));
    const auto g = run(pipe_scenario("parallel: {pp: 4, schedule: gpipe}", m));
    CHECK(g.bubble.value() / (g.bubble.value() + g.compute.value()) == Approx(3.0 / (m + 3.0)).margin(0.01));
  }
  const auto plain = run(pipe_scenario("parallel: {pp: 4, schedule: 1f1b}", 8));
  const auto inter = run(pipe_scenario("parallel: {pp: 4, vpp: 2, schedule: interleaved}", 8));
  CHECK(inter.bubble.value() == Approx(plain.bubble.value() / 2).epsilon(0.03));
  const auto zb = run(pipe_scenario("parallel: {pp: 4, schedule: zero-bubble}", 8));
  // Deferred weight gradients fill part of the cool-down (ZB-H1's ideal is (p-1)(F+B-W)).
  CHECK(zb.bubble.value() < 0.8 * plain.bubble.value());
  CHECK(zb.compute.value() == Approx(plain.compute.value()).epsilon(1e-9));
}

TEST_CASE("engine uneven stages show in the bubble", "[engine]") {
  const auto even = run(pipe_scenario("parallel: {pp: 4, stage_layers: [2, 2, 2, 2]}", 8));
  const auto uneven = run(pipe_scenario("parallel: {pp: 4, stage_layers: [1, 3, 2, 2]}", 8));
  // The 3-layer stage sets the pace: about 8 x 1.5 + 3 = 15 layer-passes of time against 11.
  CHECK(uneven.step_time.value() > even.step_time.value() * 1.15);
  CHECK(uneven.bubble.value() > even.bubble.value());
}

TEST_CASE("engine DP gradient reduction overlaps the last backward", "[engine]") {
  // dp 4 on a slow switch: the whole gradient all-reduce takes longer than what stays exposed.
  const std::string text =
      "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, scale_up: {bandwidth: 20 GB/s, latency: 1 us}}\n"
      "model: {layers: 8, hidden: 2048, heads: 16, kv_heads: 8, ffn: 8192, vocab: 8}\n"
      "training: {seq_len: 4096, global_batch: 8}\nparallel: {dp: 4, zero: 0}\n";
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto r = run(text);
  const auto t = topology::build_cluster(s.cluster);
  const double params = parallelism::count_params(*s.model).total;
  std::vector<topology::NodeId> g{0, 1, 2, 3};
  const auto net = collectives::NetworkModel::build("analytic", "n");
  double whole = 0;  // per-layer buckets, summed: all of the DP communication
  const auto pc = parallelism::count_params(*s.model);
  for (int i = 0; i < 8; ++i) {
    whole += collectives::choose_schedule(t, collectives::Op::kAllReduce, g, Bytes::of(2.0 * pc.dense_layer), {}, {},
                                          std::nullopt, *net).time.value();
  }
  (void)params;
  CHECK(r.exposed_comm.value() > 0.0);
  CHECK(r.exposed_comm.value() < 0.85 * whole);  // the rest hides under the last backward
}

TEST_CASE("engine a power cap lowers the clock and raises the step time", "[engine]") {
  const std::string text = pipe_scenario("parallel: {pp: 4}", 8);
  const auto free = run(text);
  const auto capped = run(text, "analytic", Watts::of(400));
  CHECK(capped.clock.value() < free.clock.value());
  CHECK(capped.step_time.value() > free.step_time.value());
  CHECK(capped.gpu_avg_power.value() < free.gpu_avg_power.value());
}

TEST_CASE("engine cluster.power_cap caps the step as --power-cap does, and --power-cap overrides it", "[engine]") {
  // The same 4-GPU pipeline with `power_cap: 400 W` in the scenario: the step equals the one
  // capped by the option (same clock, same time to the bit), an option's cap replaces the
  // scenario's, and the key is range-checked against the GPU under its own name.
  const std::string text = pipe_scenario("parallel: {pp: 4}", 8);
  const std::string capped_text =
      "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, power_cap: 400 W, scale_up: {bandwidth: 1 PB/s, latency: 0 s}}\n" +
      text.substr(text.find('\n') + 1);
  const auto by_option = run(text, "analytic", Watts::of(400));
  const auto by_key = run(capped_text);
  CHECK(by_key.clock.value() == by_option.clock.value());
  CHECK(by_key.step_time.value() == by_option.step_time.value());
  CHECK(by_key.step_time.value() > run(text).step_time.value());
  const auto overridden = run(capped_text, "analytic", Watts::of(600));
  CHECK(overridden.step_time.value() == run(text, "analytic", Watts::of(600)).step_time.value());
  const std::string too_low =
      "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, power_cap: 10 W, scale_up: {bandwidth: 1 PB/s, latency: 0 s}}\n" +
      text.substr(text.find('\n') + 1);
  CHECK_THROWS_WITH(run(too_low), Catch::Matchers::StartsWith("cluster.power_cap: 10 W is not above"));
  CHECK_THROWS_WITH(parse_scenario("cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, power_cap: 0 W}\n" + text.substr(text.find('\n') + 1),
                                   "t.yaml", {}, test::presets()),
                    Catch::Matchers::StartsWith("cluster.power_cap: must be positive"));
}

TEST_CASE("engine flow and analytic networks agree where nothing contends", "[engine]") {
  const std::string text = pipe_scenario("parallel: {tp: 4}", 4);
  CHECK(run(text, "flow").step_time.value() == Approx(run(text, "analytic").step_time.value()).epsilon(0.05));
}

TEST_CASE("engine search ranks valid plans and counts the ones that do not fit", "[engine]") {
  const std::string text = pipe_scenario("parallel: {pp: 4}", 8);
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "n");
  const auto res = engine::search_plans(s, t, engine::step_options(net.get()), false);
  REQUIRE(!res.plans.empty());
  CHECK(res.valid <= res.evaluated);
  CHECK(res.plans.size() + res.dropped_memory == res.valid);
  for (std::size_t i = 1; i < res.plans.size(); ++i) {
    CHECK(res.plans[i - 1].second.step_time.value() <= res.plans[i].second.step_time.value());
  }
}

TEST_CASE("engine search carries the scenario's MoE dispatcher and runs such plans on the event engine", "[engine]") {
  // 2 nodes x 4 GPUs, 8 experts: the scenario asks for DeepEP's dispatch, which only the event
  // engine runs. Every searched plan with expert parallelism (and whole experts) dispatches
  // that way, and is ranked with the step `run` gives it; the others keep the all-to-all.
  const Scenario s = parse_scenario(
      "cluster: {gpu: h100-sxm, nodes: 2, gpus_per_node: 4, scale_up: {preset: nvswitch-h100},\n"
      "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 1}}\n"
      "model: {layers: 2, hidden: 512, heads: 8, kv_heads: 8, ffn: 2048, vocab: 1024, experts: 8, top_k: 2, moe_ffn: 512}\n"
      "training: {seq_len: 256, global_batch: 16, micro_batch: 1}\n"
      "parallel: {ep: 8, moe_token_dispatcher: deepep}\n",
      "t.yaml", {}, test::presets());
  const auto res = search_and_compare(s, [](const parallelism::Plan& p) { return p.deepep(); });
  REQUIRE(!res.plans.empty());
  for (const auto& [plan, step] : res.plans) {
    INFO("tp " << plan.tp << " pp " << plan.pp << " ep " << plan.ep << " etp " << plan.etp);
    CHECK(plan.deepep() == (plan.ep > 1 && plan.etp == 1));
  }
}

TEST_CASE("engine search carries the scenario's FSDP choices to the plans that shard what they act on", "[engine]") {
  // The scenario runs FSDP as torchtitan does under pipelines: weights kept after the forward,
  // gradients reduced once a step, two layers prefetched. Every searched ZeRO-3 plan takes all
  // three, every ZeRO-2 plan the gradient reduction, the others none; those plans are ranked
  // with the step the event engine gives them.
  const Scenario s = parse_scenario(
      "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, scale_up: {preset: nvswitch-h100}}\n"
      "model: {layers: 4, hidden: 512, heads: 8, kv_heads: 8, ffn: 2048, vocab: 1024}\n"
      "training: {seq_len: 256, global_batch: 8, micro_batch: 1}\n"
      "parallel: {dp: 4, zero: 3, reshard_after_forward: false, grad_reduce: step, prefetch_layers: 2}\n",
      "t.yaml", {}, test::presets());
  const auto res = search_and_compare(s, [](const parallelism::Plan& p) { return p.zero >= 2 && p.dp * p.cp > 1; });
  std::size_t zero3 = 0, zero2 = 0;
  for (const auto& [plan, step] : res.plans) {
    INFO("tp " << plan.tp << " pp " << plan.pp << " zero " << plan.zero);
    CHECK(plan.grad_reduce_per_step == (plan.zero >= 2));
    CHECK(plan.reshard_after_forward == (plan.zero < 3));
    CHECK(plan.prefetch_layers == (plan.zero == 3 ? 2 : 1));
    zero3 += plan.zero == 3;
    zero2 += plan.zero == 2;
  }
  CHECK(zero3 > 0);
  CHECK(zero2 > 0);
}

TEST_CASE("engine fp8 adds an fp8 copy of the weights and shrinks the kept activations", "[engine]") {
  auto memory = [](const char* precision) {
    const Scenario s = parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true, recompute: selective}", 4),
                                      "t.yaml", {std::string("training.precision=") + precision}, test::presets());
    return engine::memory_per_gpu(s, parallelism::make_plan(s));
  };
  const auto bf16 = memory("bf16"), fp8 = memory("fp8");
  // bf16 weights are 2 bytes per parameter held; fp8 adds 1 more.
  CHECK(fp8.weights.value() == Approx(1.5 * bf16.weights.value()));
  CHECK(fp8.gradients.value() == Approx(bf16.gradients.value()));
  CHECK(fp8.optimizer.value() == Approx(bf16.optimizer.value()));
  CHECK(fp8.activations.value() < bf16.activations.value());
}

TEST_CASE("engine training.fp8_recipe reaches the GPU model: blockwise GEMMs at the GPU's blockwise ratios", "[engine]") {
  for (const bool events : {false, true}) {
    INFO((events ? "event engine" : "composed"));
    auto step = [events](const std::vector<std::string>& sets) {
      std::vector<std::string> all = {"training.precision=fp8"};
      all.insert(all.end(), sets.begin(), sets.end());
      const Scenario s = parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true, recompute: selective}", 4), "t.yaml", all, test::presets());
      const auto net = collectives::NetworkModel::build("analytic", "network");
      const auto plan = parallelism::make_plan(s);
      const auto o = engine::step_options(net.get());
      return (events ? engine::simulate_step_events(s, plan, topology::build_step_fabric(s.cluster), o)
                     : engine::simulate_step(s, plan, topology::build_cluster(s.cluster), o))
          .step_time.value();
    };
    const double tensorwise = step({});
    // Ratios equal to the tensorwise one: the same step, to the last bit.
    CHECK(step({"training.fp8_recipe=blockwise", "cluster.gpu.fp8_blockwise_ratio=0.9434", "cluster.gpu.fp8_blockwise_wgrad_ratio=0.9434"}) ==
          tensorwise);
    // Slower weight gradients only: a longer step; slower everything: longer still.
    const double wgrad = step({"training.fp8_recipe=blockwise", "cluster.gpu.fp8_blockwise_ratio=0.9434", "cluster.gpu.fp8_blockwise_wgrad_ratio=0.47"});
    CHECK(wgrad > tensorwise * 1.02);
    CHECK(step({"training.fp8_recipe=blockwise", "cluster.gpu.fp8_blockwise_ratio=0.44", "cluster.gpu.fp8_blockwise_wgrad_ratio=0.44"}) > wgrad * 1.02);
  }
  // The blockwise recipe scales FP8 GEMMs: without FP8 the plan is bad input naming the key (a
  // sweep over precision reports it per point); tensorwise, the default, goes with any precision.
  const Scenario bf16 = parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true}", 4), "t.yaml", {"training.fp8_recipe=blockwise"},
                                       test::presets());
  CHECK_THROWS_WITH(parallelism::make_plan(bf16),
                    Catch::Matchers::Contains("training.fp8_recipe: blockwise scales FP8 GEMMs: it needs training.precision: fp8"));
  CHECK_NOTHROW(parallelism::make_plan(parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true}", 4), "t.yaml",
                                                      {"training.fp8_recipe=tensorwise"}, test::presets())));
  CHECK_THROWS_WITH(parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true}", 4), "t.yaml", {"training.fp8_recipe=rowwise"},
                                   test::presets()),
                    Catch::Matchers::Contains("training.fp8_recipe"));
}

TEST_CASE("engine bytes moved count every pass of every micro-batch, and links and stages add up", "[engine]") {
  // tp 4 with sequence parallelism, 4 micro-batches, nothing else communicating: each layer's
  // forward runs 2 all-gathers and 2 reduce-scatters of s·b·h bf16 activations, the backward
  // the same again (selective recompute recomputes no communication). A ring all-gather or
  // reduce-scatter sends (n-1)/n of the size from each rank.
  const std::string text = pipe_scenario("parallel: {tp: 4, sp: true, recompute: selective}", 4);
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  auto o = engine::step_options(net.get());
  o.link_bytes = true;
  const auto r = engine::simulate_step(s, plan, t, o);
  const double act = 2.0 * 4096 * 4096;  // bf16, seq 4096, micro-batch 1, hidden 4096
  const double per_gpu = 8 /*layers*/ * 4 /*micro-batches*/ * 8 /*collectives*/ * 0.75 * act;
  CHECK(r.scale_up_bytes.value() == Approx(4 * per_gpu).epsilon(1e-9));
  CHECK(r.scale_out_bytes.value() == 0.0);
  // Every message crosses two links (GPU to switch, switch to GPU).
  double links = 0;
  for (double b : r.link_bytes) links += b;
  CHECK(links == Approx(2 * r.scale_up_bytes.value()).epsilon(1e-9));
  // The stages' energies over every replica are the step's energy.
  REQUIRE(r.stages.size() == 1);
  CHECK(4 * r.stages[0].energy.value() == Approx(r.step_energy.value()).epsilon(1e-12));
  const auto& st = r.stages[0];
  CHECK((st.compute + st.comm + st.bubble + st.other).value() == Approx(r.step_time.value()).epsilon(1e-9));
}

TEST_CASE("engine a wafer-scale step streams every layer's weights, and rejects plans that are not data parallel", "[engine][wafer]") {
  // Four WSE-3 wafers with a 1 GB/s I/O link: every layer waits for its weights, twice per
  // pass (forward, backward), so step = passes x (2 x layer weights / I/O + the head's compute).
  const std::string text =
      "cluster: {preset: cs3-x4, scale_out: {preset: cs-io, topology: wafer-mesh, dims: 750x994, bandwidth: 8 Gb/s}}\n"
      "model: llama3-8b\ntraining: {seq_len: 2048, global_batch: 16, micro_batch: 2}\n"
      "parallel: {dp: 4, zero: 0, recompute: full}\n";
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_step_fabric(s.cluster);
  CHECK(t.num_endpoints() == 4);  // the wafers, not their 3 million cores
  const auto net = collectives::NetworkModel::build("analytic", "network");
  const auto r = engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  const auto pc = parallelism::count_params(*s.model);
  const double passes = 16.0 / 4 / 2;
  const double layers = 32 * 2.0 * pc.dense_layer / 1e9;  // bf16 weights, 1 GB/s
  CHECK(r.exposed_comm.value() > 0.9 * r.step_time.value());
  CHECK(r.step_time.value() == Approx(passes * 2.0 * layers).epsilon(0.02));  // + the head's compute
  CHECK(r.step_time.value() > passes * 2.0 * layers);
  // On-wafer memory: two layers' weights and one layer's gradients; no optimizer state.
  CHECK(r.memory.weights.value() == Approx(2 * 2.0 * pc.dense_layer));
  CHECK(r.memory.optimizer.value() == 0.0);
  // Energy: four systems idle (2.3 kW) over the step and at 23 kW while computing, plus the
  // mesh's bit crossings at 0.1 pJ/bit (the I/O link has no energy figure).
  CHECK(r.step_energy.value() == Approx(4 * (2.3e3 * r.step_time.value() + 20.7e3 * r.compute.value()) +
                                        r.scale_up_bytes.value() * 8 * 0.1e-12));
  // Tensor parallelism inside a wafer is not a weight-streaming plan.
  const Scenario tp = parse_scenario(text, "t.yaml", {"parallel.dp=2", "parallel.tp=2"}, test::presets());
  CHECK_THROWS_WITH(engine::memory_per_gpu(tp, parallelism::make_plan(tp)), Catch::Contains("data parallel across wafers"));
  // The external store (MemoryX) holds 16 B per parameter: Llama 3 8B (8.03B parameters,
  // 128 GB) fits in 1.2 PB and in 129 GB, not in 127 GB.
  CHECK(s.cluster.external_memory->value() == 1.2e15);
  CHECK(16.0 * pc.total == Approx(128.5e9).epsilon(0.005));
  const Scenario roomy = parse_scenario(text, "t.yaml", {"cluster.external_memory=129GB"}, test::presets());
  CHECK_NOTHROW(engine::memory_per_gpu(roomy, plan));
  const Scenario small = parse_scenario(text, "t.yaml", {"cluster.external_memory=127GB"}, test::presets());
  CHECK_THROWS_WITH(engine::memory_per_gpu(small, plan),
                    Catch::Contains("cluster.external_memory") && Catch::Contains("7.938B parameters"));
}

TEST_CASE("engine a wafer in pipelined mode: layers in mesh regions, the 1F1B bubble, SRAM per core", "[engine][wafer]") {
  // A 12-layer GPT-2-small-sized model resident on each of four WSE-3 wafers.
  const std::string text =
      "cluster: cs3-x4\n"
      "model: {layers: 12, hidden: 768, heads: 12, kv_heads: 12, ffn: 3072, vocab: 50257, activation: gelu}\n"
      "training: {seq_len: 1024, global_batch: 256, micro_batch: 1}\n"
      "parallel: {dp: 4, wafer_mode: pipelined}\n";
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  REQUIRE(plan.wafer_pipelined);
  const auto t = topology::build_step_fabric(s.cluster);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  const auto r = engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  // 13 stages (12 layers and the head), 64 micro-batches per wafer: bubble / busy = 12 / 64.
  CHECK(r.bubble.value() / r.compute.value() == Approx(12.0 / 64.0));
  CHECK((r.compute + r.bubble + r.exposed_comm + r.other).value() == Approx(r.step_time.value()));
  // The whole model state is on the wafer: 16 bytes per parameter.
  const auto pc = parallelism::count_params(*s.model);
  CHECK((r.memory.weights + r.memory.gradients + r.memory.optimizer).value() == Approx(16.0 * pc.total));
  // Cores with 4 kB of SRAM run the GEMMs but cannot hold a region's share of the model state.
  const Scenario tiny = parse_scenario(text, "t.yaml", {"cluster.gpu.sram_per_core=4 kB"}, test::presets());
  CHECK_THROWS_WITH(engine::simulate_step(tiny, parallelism::make_plan(tiny), t, engine::step_options(net.get())),
                    Catch::Contains("parallel.wafer_mode") && Catch::Contains("per core"));
  CHECK_THROWS_WITH(parse_scenario(text, "t.yaml", {"parallel.wafer_mode=stacked"}, test::presets()),
                    Catch::Contains("parallel.wafer_mode"));
}

TEST_CASE("engine the optimizer and its precisions and dropout are scenario keys that memory and step and checkpoint follow",
          "[engine]") {
  // Bytes per parameter beyond the bf16 weights and gradients (ZeRO's K): master weights (4 or
  // 2) plus moments (Adam, AdamW, LAMB: 2; SGD with momentum: 1) of 4 or 2 bytes each.
  auto scenario = [](const std::vector<std::string>& sets) {
    return parse_scenario(pipe_scenario("parallel: {tp: 4, sp: true, recompute: selective}", 4), "t.yaml", sets,
                          test::presets());
  };
  struct Want {
    std::vector<std::string> sets;
    double k;
  };
  const std::vector<Want> wants = {{{}, 12.0},
                                   {{"training.optimizer=adamw"}, 12.0},
                                   {{"training.optimizer=lamb"}, 12.0},
                                   {{"training.optimizer=sgd"}, 8.0},
                                   {{"training.master_weights=bf16"}, 10.0},
                                   {{"training.optimizer_states=bf16"}, 8.0},
                                   {{"training.optimizer=sgd", "training.master_weights=bf16", "training.optimizer_states=bf16"}, 4.0}};
  const Scenario adam = scenario({});
  const auto adam_mem = engine::memory_per_gpu(adam, parallelism::make_plan(adam));
  const double params = adam_mem.gradients.value() / 2.0;  // 2 bytes a gradient, one GPU's share
  for (const auto& w : wants) {
    INFO(w.k);
    const Scenario s = scenario(w.sets);
    const auto plan = parallelism::make_plan(s);
    CHECK(plan.optimizer_bytes == w.k);
    CHECK(engine::memory_per_gpu(s, plan).optimizer.value() == Approx(w.k * params).epsilon(1e-12));
    // A checkpoint holds the bf16 weights and the optimizer's state.
    CHECK(failures::checkpoint_shards(s, plan).total.value() ==
          Approx((2.0 + w.k) * parallelism::count_params(*s.model).total).epsilon(1e-12));
  }
  // The optimizer step reads gradients, master weights and moments and writes them and the
  // weights: 2 + 2K + 2 bytes per parameter of HBM traffic, the rest of the step unchanged.
  auto hbm = [&](const Scenario& s) {
    const auto t = topology::build_cluster(s.cluster);
    const auto net = collectives::NetworkModel::build("analytic", "network");
    return engine::simulate_step(s, parallelism::make_plan(s), t, engine::step_options(net.get())).hbm_bytes.value();
  };
  const Scenario sgd = scenario({"training.optimizer=sgd"});
  CHECK(hbm(adam) - hbm(sgd) == Approx(4 * 2.0 * (12.0 - 8.0) * params).epsilon(1e-9));  // 4 GPUs
  // Dropout: Llama-style models have none; the key adds the two 1-byte masks per layer, sharded
  // over TP with SP: 2 sbh / t bytes per layer, times 8 layers and the micro-batches in flight.
  const auto no = engine::memory_per_gpu(adam, parallelism::make_plan(adam));
  const Scenario drop = scenario({"training.dropout=true"});
  const auto with = engine::memory_per_gpu(drop, parallelism::make_plan(drop));
  CHECK(parallelism::make_plan(drop).dropout);
  CHECK(!parallelism::make_plan(adam).dropout);
  CHECK(with.activations.value() - no.activations.value() == Approx(8 * 2.0 * 4096 * 4096 / 4).epsilon(1e-12));
}

TEST_CASE("engine a slow GPU sets its stage's pace and the event engine agrees", "[engine]") {
  // cluster.slow_gpus: GPU 3 at half speed on one stage of TP 4 (no pipeline): every kernel of
  // the stage waits for it at each TP collective, so the compute and the optimizer take twice
  // as long and communication is unchanged: step + compute + optimizer. (The GPUs' dynamic
  // power is set low so that no power cap moves the clock between the two runs.)
  const std::string base = pipe_scenario("parallel: {tp: 4, sp: true, recompute: selective}", 4);
  const auto net = collectives::NetworkModel::build("analytic", "network");
  auto step = [&](const std::string& text, std::vector<std::string> sets, bool events = false) {
    sets.push_back("cluster.gpu.dynamic_power=100 W");
    const Scenario s = parse_scenario(text, "t.yaml", sets, test::presets());
    const auto plan = parallelism::make_plan(s);
    const auto t = topology::build_cluster(s.cluster);
    return events ? engine::simulate_step_events(s, plan, t, engine::step_options(net.get()))
                  : engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  };
  const std::string slow3 = "cluster.slow_gpus={gpus: [3], speed: 0.5}";
  const auto healthy = step(base, {}), r = step(base, {slow3});
  CHECK(r.clock.value() == healthy.clock.value());
  CHECK(r.step_time.value() == Approx(healthy.step_time.value() + healthy.compute.value() + healthy.other.value()).epsilon(1e-9));
  CHECK(r.exposed_comm.value() == Approx(healthy.exposed_comm.value()).epsilon(1e-9));
  REQUIRE(r.stragglers.size() == 1);
  CHECK(r.stragglers[0].gpu == 3);
  CHECK(r.stragglers[0].stage == 0);
  // The event engine runs GPU 3's kernels at half speed and its peers wait at each collective.
  CHECK(step(base, {slow3}, true).step_time.value() == Approx(r.step_time.value()).epsilon(0.005));
  // On two pipeline stages, a slow GPU on stage 1 slows stage 1's compute only.
  const std::string pp = pipe_scenario("parallel: {tp: 2, pp: 2, sp: true, recompute: selective}", 4);
  const auto h2 = step(pp, {}), r2 = step(pp, {slow3});
  REQUIRE(r2.stragglers.size() == 1);
  CHECK(r2.stragglers[0].stage == 1);
  CHECK(r2.stages[1].compute.value() == Approx(2.0 * h2.stages[1].compute.value()).epsilon(1e-9));
  CHECK(r2.stages[0].compute.value() == Approx(h2.stages[0].compute.value()).epsilon(1e-9));
  CHECK(step(pp, {slow3}, true).step_time.value() == Approx(r2.step_time.value()).epsilon(0.005));
  SECTION("the event engine's timeline shows one rank of each rank class: the slow GPU's own") {
    // TP 4 on one stage, GPU 3 slow: GPU 3 is a class of its own (its rank shown), the other
    // three one class (shown by rank 0, the stage's first); GPU 3's kernels take twice as long.
    const Scenario s = parse_scenario(base, "t.yaml", {slow3, "cluster.gpu.dynamic_power=100 W"}, test::presets());
    const auto plan = parallelism::make_plan(s);
    const auto t = topology::build_cluster(s.cluster);
    auto o = engine::step_options(net.get());
    o.timeline = true;
    const auto ev = engine::simulate_step_events(s, plan, t, o);
    CHECK(ev.rank_classes == 2);
    std::map<int, double> kernel_time;  // by rank shown: its kernels' time
    for (const auto& e : ev.timeline) {
      if (e.lane == 0) kernel_time[e.rank] += (e.end - e.start).value();
    }
    REQUIRE(kernel_time.size() == 2);
    REQUIRE(kernel_time.count(0) == 1);
    REQUIRE(kernel_time.count(3) == 1);
    CHECK(kernel_time[3] == Approx(2.0 * kernel_time[0]).epsilon(1e-9));
  }
}

TEST_CASE("engine symmetry is decided: a failed cable costs the same under any group, and one group per class equals every group", "[engine]") {
  const auto analytic = collectives::NetworkModel::build("analytic", "network");
  const auto flow = collectives::NetworkModel::build("flow", "network");
  // Issue 20's case: 2 nodes x 8 H100, TP 8, DP 2. GPU 0's and GPU 8's NVLink cables are
  // mirror images (first GPU of each TP group); before, only group 0's was seen.
  const std::string two_nodes =
      "cluster: {gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_up: {preset: nvswitch-h100},\n"
      "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 2}}\n"
      "model: llama3-8b\n"
      "training: {seq_len: 4096, global_batch: 4, micro_batch: 1}\n"
      "parallel: {tp: 8, dp: 2, sp: true, zero: 1, recompute: selective}\n";
  auto step = [](const std::string& text, const collectives::NetworkModel& net, const std::string& failed,
                 bool classes = true, const std::vector<std::string>& sets = {}) {
    const Scenario s = parse_scenario(text, "t.yaml", sets, test::presets());
    const auto plan = parallelism::make_plan(s);
    auto t = topology::build_cluster(s.cluster);
    if (!failed.empty()) {
      const auto dash = failed.find('-');
      bool found = false;
      for (topology::LinkId l = 0; l < t.num_links(); ++l) {
        if (t.node_name(t.link_source(l)) == failed.substr(0, dash) && t.node_name(t.link_target(l)) == failed.substr(dash + 1)) {
          t.fail_link(l);
          found = true;
          break;
        }
      }
      REQUIRE(found);
    }
    auto o = engine::step_options(&net);
    o.classes = classes;
    return engine::simulate_step(s, plan, t, o);
  };
  for (const auto* net : {analytic.get(), flow.get()}) {
    INFO(net->name());
    const double healthy = step(two_nodes, *net, "").step_time.value();
    const double under0 = step(two_nodes, *net, "gpu0-nvswitch0").step_time.value();
    const double under1 = step(two_nodes, *net, "gpu8-nvswitch1").step_time.value();
    CHECK(under0 > 1.2 * healthy);  // GPU 0's TP traffic leaves the node through its NIC
    CHECK(under1 == Approx(under0).epsilon(1e-12));
    // cluster.degraded_links: GPU 0's or GPU 8's NVLink at a quarter of its bandwidth. Each
    // TP group's ring then moves at the slow link's rate: the same step either way, slower
    // than healthy; and the classes (every group its own here) equal every group.
    auto degraded = [&](const std::string& link) {
      return step(two_nodes, *net, "", true, {"cluster.degraded_links=[{link: " + link + ", factor: 0.25}]"});
    };
    const double slow0 = degraded("gpu0-nvswitch0").step_time.value();
    CHECK(slow0 > 1.2 * healthy);
    CHECK(degraded("gpu8-nvswitch1").step_time.value() == Approx(slow0).epsilon(1e-12));
  }
  // 16 GPUs in nodes of 4 on scale-up domains of 12 (the last partial, as on NVL72 racks):
  // TP group 0 (GPUs 0-7) is inside domain 0, TP group 1 (GPUs 8-15) straddles domains 0 and
  // 1, so its collectives cross the scale-out fabric and the step waits for it. The classes
  // must give what costing every group gives, and more than a job whose groups all stay in.
  auto sixteen = [](int domain) {
    return "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_up: {preset: nvswitch-h100, domain: " +
           std::to_string(domain) +
           "},\n"
           "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 2}}\n"
           "model: llama3-8b\n"
           "training: {seq_len: 4096, global_batch: 4, micro_batch: 1}\n"
           "parallel: {tp: 8, dp: 2, sp: true, zero: 1, recompute: selective}\n";
  };
  for (const auto* net : {analytic.get(), flow.get()}) {
    INFO(net->name());
    const auto inside = step(sixteen(16), *net, "");
    const auto by_class = step(sixteen(12), *net, "");
    const auto every = step(sixteen(12), *net, "", false);
    CHECK(by_class.step_time.value() == Approx(every.step_time.value()).epsilon(1e-12));
    CHECK(by_class.scale_out_bytes.value() == Approx(every.scale_out_bytes.value()).epsilon(1e-12));
    CHECK(by_class.step_time.value() > 1.2 * inside.step_time.value());
    // Half the TP groups cross: per GPU, 4 of group 1's 8 GPUs send part of their TP bytes out.
    CHECK(inside.scale_out_bytes.value() < by_class.scale_out_bytes.value());
  }
}

namespace {
/// One 4-GPU node at 100 GB/s, TP 4 + SP, a Llama-style dense model: the TP overlap cases.
const std::string kTpOverlapNode =
    "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, scale_up: {bandwidth: 100 GB/s, latency: 2 us}}\n"
    "model: {layers: 4, hidden: 4096, heads: 32, kv_heads: 8, ffn: 14336, vocab: 32000}\n"
    "training: {seq_len: 4096, global_batch: 1}\n"
    "parallel: {tp: 4, sp: true, recompute: none}\n";
}  // namespace

TEST_CASE("engine parallel.tp_comm_overlap pipelines SP's collectives with their GEMMs, at the SMs they take", "[engine]") {
  // One 4-GPU node at 100 GB/s, TP 4 + SP, Llama-style dense layer. Per layer and pass, each
  // of the two blocks (attention, MLP) has an all-gather before its first GEMM and a
  // reduce-scatter after its last. With overlap (NeMo's H100 userbuffers methods), a
  // collective of time c beside a GEMM of time g (kernel overhead o included), the GEMM on
  // S - k of the S SMs while they run, g' = (g - o) S / (S - k) + o:
  //   ring exchange (all-gathers; tp chunks, k = 1) and pipeline (forward reduce-scatters;
  //   4 chunks, k = 24 then 16): n chunks of c/n and (g - o) S/(S - k)/n + o in a two-stage
  //   pipeline, c/n + (n - 1) max(c/n, g_n) + g_n, instead of c + g;
  //   bulk (backward reduce-scatters beside the weight-gradient GEMM; k = 24 then 4):
  //   max(c, g'), instead of c + g.
  const std::string text = kTpOverlapNode;
  const auto net = collectives::NetworkModel::build("analytic", "network");
  auto step = [&](bool overlap) {
    const Scenario s = parse_scenario(text, "t.yaml", {"parallel.tp_comm_overlap=" + std::string(overlap ? "true" : "false")},
                                      test::presets());
    const auto plan = parallelism::make_plan(s);
    const auto t = topology::build_cluster(s.cluster);
    return engine::simulate_step(s, plan, t, engine::step_options(net.get()));
  };
  const auto plain = step(false), overlapped = step(true);
  // The inputs, from the GPU and collective models on their own.
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto t = topology::build_cluster(s.cluster);
  const hardware::GpuModel gpu(s.cluster.gpu);
  const parallelism::Shard sh = sp_shard(1, 4096, 4);
  const auto ks = parallelism::layer_forward(*s.model, 0, sh);
  auto gemm_named = [&](const std::string& name) -> const parallelism::Kernel& {
    for (const auto& k : ks) {
      if (k.name == name) return k;
    }
    FAIL("no kernel " << name);
    return ks.front();
  };
  const std::vector<topology::NodeId> g{0, 1, 2, 3};
  const Bytes act = Bytes::of(2.0 * 4096 * 4096);
  const double ag = collectives::choose_schedule(t, collectives::Op::kAllGather, g, act, {}, {}, std::nullopt, *net).time.value();
  const double rs = collectives::choose_schedule(t, collectives::Op::kReduceScatter, g, act, {}, {}, std::nullopt, *net).time.value();
  const double S = s.cluster.gpu.sms, o = s.cluster.gpu.kernel_overhead.value();  // h100-sxm: 132 SMs
  REQUIRE(S == 132);
  auto piped = [&](double c, double gt, double n, double k) {
    const double gn = (gt - o) * S / (S - k) / n + o;
    return c / n + (n - 1) * std::max(c / n, gn) + gn - (c + gt);
  };
  auto bulk = [&](double c, double gt, double k) { return std::max(c, (gt - o) * S / (S - k) + o) - (c + gt); };
  auto fwd_of = [&](const char* name) { return gpu.time(gemm_named(name)).value(); };
  auto dgrad_of = [&](const char* name) { return gpu.time(parallelism::data_gradient(gemm_named(name))).value(); };
  auto wgrad_of = [&](const char* name) { return gpu.time(parallelism::weight_gradient(gemm_named(name))).value(); };
  const double forward = piped(ag, fwd_of("qkv projection"), 4, 1) + piped(rs, fwd_of("output projection"), 4, 24) +
                         piped(ag, fwd_of("mlp up/gate"), 4, 1) + piped(rs, fwd_of("mlp down"), 4, 16);
  const double backward = piped(ag, dgrad_of("output projection"), 4, 1) + bulk(rs, wgrad_of("qkv projection"), 24) +
                          piped(ag, dgrad_of("mlp down"), 4, 1) + bulk(rs, wgrad_of("mlp up/gate"), 4);
  INFO("ag " << ag << " rs " << rs << " forward change " << forward << " backward change " << backward);
  CHECK(forward < 0.0);  // the overlap hides more than the SMs it takes cost
  CHECK(overlapped.layer_forward.value() - plain.layer_forward.value() == Approx(forward).epsilon(1e-9));
  CHECK(overlapped.layer_backward.value() - plain.layer_backward.value() == Approx(backward).epsilon(1e-9));
  CHECK(overlapped.step_time.value() < plain.step_time.value());
  CHECK(overlapped.scale_up_bytes.value() == plain.scale_up_bytes.value());  // the same bytes move
  // Megatron-LM's rule: no overlap without SP; no TP, nothing to overlap.
  CHECK_THROWS_WITH(parallelism::make_plan(parse_scenario(text, "t.yaml", {"parallel.tp_comm_overlap=true", "parallel.sp=false"},
                                                          test::presets())),
                    Catch::StartsWith("parallel.tp_comm_overlap: needs sequence parallelism"));
  CHECK_THROWS_WITH(parallelism::make_plan(parse_scenario(text, "t.yaml", {"parallel.tp_comm_overlap=true", "parallel.tp=1"},
                                                          test::presets())),
                    Catch::StartsWith("parallel.tp_comm_overlap: needs tensor parallelism"));
}

TEST_CASE("engine the event engine's link bytes count each transfer once, in its direction", "[engine]") {
  // One 16-GPU NVSwitch node, TP 4 x PP 2 x DP 2: every transfer goes GPU -> NVSwitch -> GPU, two links,
  // so the links carry twice the bytes the GPUs send; and every GPU's uplink carries exactly
  // what it sends, its downlink what it receives (the two differ where the pipeline sends one
  // way: stage 0 sends activations, stage 1 gradients, of the same size here).
  const Scenario s = parse_scenario(pipe_scenario("parallel: {tp: 4, pp: 2, dp: 2, sp: true, recompute: selective}", 4),
                                    "t.yaml", {"cluster.gpus_per_node=16"}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("flow", "network");
  auto o = engine::step_options(net.get());
  o.link_bytes = true;
  o.timeline = true;
  const auto r = engine::simulate_step_events(s, plan, t, o);
  REQUIRE(r.link_bytes.size() == t.num_links());
  double total = 0.0;
  for (double b : r.link_bytes) total += b;
  CHECK(total == Approx(2.0 * r.scale_up_bytes.value()).epsilon(1e-12));
  CHECK(r.scale_out_bytes.value() == 0.0);
  double up = 0.0, down = 0.0;
  for (topology::LinkId l = 0; l < t.num_links(); ++l) {
    (t.link_source(l) < t.num_endpoints() ? up : down) += r.link_bytes[l];
  }
  CHECK(up == Approx(r.scale_up_bytes.value()).epsilon(1e-12));
  CHECK(down == Approx(up).epsilon(1e-12));
  // The timeline: both stages, every lane the step uses.
  std::set<std::pair<int, int>> lanes;
  for (const auto& e : r.timeline) lanes.insert({e.stage, e.lane});
  for (int stage : {0, 1}) {
    for (int lane : {0, 1, 2, 3}) {
      INFO("stage " << stage << " lane " << lane);
      CHECK(lanes.count({stage, lane}) == 1);
    }
  }
}

TEST_CASE("engine eager PyTorch over fused kernels: torchtitan's torch.compile speed-up on Llama 3.1 8B", "[engine]") {
  // torchtitan benchmarks/llama3_h100_202412_torchtitan.md (docs/calibration-sources-presets.md
  // 4.3), Table 1: Llama 3.1 8B on 8 H100 (96 GB HBM2e, 2.4 TB/s, 500 W), FSDP 8, local batch 2,
  // selective checkpointing: 5,762 tokens/s per GPU eager, 6,667 with torch.compile, a 1.157x
  // speed-up. wallsim's fused kernels (one pass per norm, RoPE and SwiGLU) stand for the
  // compiled model's; its eager list is transformers' Llama op by op. The memory is raised: the
  // op-level checkpointing torchtitan runs is not modelled, and the ratio is one of compute.
  const std::string scenario =
      "cluster: {gpu: {preset: h100-sxm, memory: 141 GB, memory_bandwidth: 2.4 TB/s}, nodes: 1, gpus_per_node: 8,\n"
      "  scale_up: {preset: nvswitch-h100}, power_cap: 500 W}\n"
      "model: llama3-8b\n"
      "parallel: {dp: 8, zero: 3, recompute: selective}\n";
  const double eager = run(scenario + "training: {seq_len: 8192, global_batch: 16, micro_batch: 2, kernels: eager}\n").step_time.value();
  const double fused = run(scenario + "training: {seq_len: 8192, global_batch: 16, micro_batch: 2}\n").step_time.value();
  CHECK(eager / fused == Approx(6667.0 / 5762.0).epsilon(0.06));  // 1.21 here: +4.6 %
}

TEST_CASE("engine overlap_param_gather: ZeRO-1's weight all-gather runs under the next forward, layer by layer",
          "[engine]") {
  // 2 nodes x 8 H100, DP 16, ZeRO-1, 4 equal layers, one micro-batch per GPU. Without the
  // overlap the all-gather follows the optimizer on the critical path; with it, it runs first on
  // the data-parallel stream and the forward waits only for the first layer's quarter of it
  // (the forward is far longer than the gather), so the step is shorter by 3/4 of the gather.
  // NCCL's kernels hold no SMs here (nccl_channels_per_gpu 0) unless a check says otherwise.
  const std::string base =
      "cluster: {gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_up: nvswitch-h100,\n"
      "  scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 1}}\n"
      "model: {layers: 4, hidden: 4096, heads: 32, ffn: 14336, vocab: 128, activation: swiglu, tied_embeddings: true}\n"
      "training: {seq_len: 8192, global_batch: 16}\n";
  auto step = [&](bool overlap, bool events, double* gather = nullptr, int channels = 0) {
    const Scenario s = parse_scenario(base + "parallel: {dp: 16, zero: 1, overlap_param_gather: " + (overlap ? "true" : "false") + "}\n",
                                      "t.yaml", {"cluster.scale_out.nccl_channels_per_gpu=" + std::to_string(channels)}, test::presets());
    const auto plan = parallelism::make_plan(s);
    const auto t = topology::build_cluster(s.cluster);
    const auto net = collectives::NetworkModel::build("analytic", "network");
    auto o = engine::step_options(net.get());
    o.timeline = true;
    const auto r = events ? engine::simulate_step_events(s, plan, t, o) : engine::simulate_step(s, plan, t, o);
    for (const auto& e : r.timeline) {
      if (gather != nullptr && e.name.find("ZeRO parameters") != std::string::npos) *gather = (e.end - e.start).value();
    }
    return r.step_time.value();
  };
  double t_gather = 0.0;
  const double plain = step(false, false, &t_gather);
  REQUIRE(t_gather > 0.0);
  // The embedding is tied and tiny: the four layers carry the stage's weights in equal shares.
  CHECK(step(true, false) == Approx(plain - 0.75 * t_gather).epsilon(1e-9));
  // The event engine gathers layer by layer, four collectives where the plain step has one: the
  // same saving less three collectives' latencies (about 0.1 ms here), within 5 %.
  const double ev_plain = step(false, true), ev_overlap = step(true, true);
  CHECK(ev_plain - ev_overlap == Approx(0.75 * t_gather).epsilon(0.05));
  CHECK(ev_plain - ev_overlap < 0.75 * t_gather);
  // With NCCL's 16 channels (ib-ndr's 2 for each of a node's GPUs), the gathers hold 16 SMs
  // from the forward's kernels beside them: the overlap still saves, less (engine_simulate_test
  // derives the share).
  const double ev16_plain = step(false, true, nullptr, 2), ev16_overlap = step(true, true, nullptr, 2);
  CHECK(ev16_plain - ev16_overlap > 0.0);
  CHECK(ev16_plain - ev16_overlap < ev_plain - ev_overlap);
  // Refused where Megatron-LM refuses it.
  CHECK_THROWS_WITH(parallelism::make_plan(parse_scenario(base + "parallel: {dp: 16, zero: 0, overlap_param_gather: true}\n",
                                                          "t.yaml", {}, test::presets())),
                    Catch::Matchers::Contains("parallel.overlap_param_gather: needs the distributed optimizer"));
  CHECK_THROWS_WITH(parallelism::make_plan(parse_scenario(base + "parallel: {dp: 16, zero: 1, overlap_param_gather: true, overlap_grad_reduce: false}\n",
                                                          "t.yaml", {}, test::presets())),
                    Catch::Matchers::Contains("needs parallel.overlap_grad_reduce"));
}

TEST_CASE("engine parallel.tp_comm_overlap on the event engine: SP's collectives in chunks on the side stream", "[engine]") {
  // The same 4-GPU node, TP 4 + SP. With overlap, per layer, each block's all-gather runs as
  // tp = 4 chunks on the side stream, each feeding its chunk of the block's first GEMM, and
  // its reduce-scatter as 4 chunks after the last GEMM's chunks; in backward the output
  // gradient's all-gather in 4 chunks with the last GEMM's data gradient and the input
  // gradient's reduce-scatter whole, beside the first GEMM's weight gradient: 2 x (4 + 4) forward
  // and 2 x (4 + 1) backward, 26 collectives a layer on the side stream, none on the compute stream.
  const std::string text = kTpOverlapNode;
  const auto net = collectives::NetworkModel::build("analytic", "network");
  auto scenario = [&](bool overlap) {
    return parse_scenario(text, "t.yaml", {"parallel.tp_comm_overlap=" + std::string(overlap ? "true" : "false")}, test::presets());
  };
  const Scenario on = scenario(true), off = scenario(false);
  const auto plan_on = parallelism::make_plan(on), plan_off = parallelism::make_plan(off);
  const auto prog = parallelism::step_program(*on.model, plan_on);
  int side = 0, compute_stream = 0;
  for (const auto& op : prog.ops_of(0)) {
    if (op.kind != parallelism::ProgramOp::Kind::kCollective || op.name.rfind("TP", 0) != 0) continue;
    (op.stream == parallelism::StreamKind::kSide ? side : compute_stream) += 1;
  }
  CHECK(side == 4 * 26);
  CHECK(compute_stream == 0);
  const auto t = topology::build_cluster(on.cluster);
  const auto events_on = engine::simulate_step_events(on, plan_on, t, engine::step_options(net.get()));
  const auto events_off = engine::simulate_step_events(off, plan_off, t, engine::step_options(net.get()));
  const auto composed_on = engine::simulate_step(on, plan_on, t, engine::step_options(net.get()));
  CHECK(events_on.step_time.value() < events_off.step_time.value());
  CHECK(events_on.exposed_comm.value() < events_off.exposed_comm.value());
  CHECK(events_on.scale_up_bytes.value() == Approx(events_off.scale_up_bytes.value()).epsilon(1e-12));  // the same bytes move
  // The chunked GEMMs on fewer SMs count as compute here, as a change of exposed time in the
  // composed step; their smaller tiles make the event engine's step a little longer.
  CHECK(events_on.step_time.value() == Approx(composed_on.step_time.value()).epsilon(0.06));
  // A GPU without the SMs the reduce-scatters take cannot overlap.
  const Scenario few = parse_scenario(text, "t.yaml", {"parallel.tp_comm_overlap=true", "cluster.gpu.sms=16"}, test::presets());
  CHECK_THROWS_WITH(engine::simulate_step_events(few, parallelism::make_plan(few), t, engine::step_options(net.get())),
                    Catch::StartsWith("cluster.gpu.sms"));
}

TEST_CASE("engine memory: the caching allocator's reserve makes a plan that fits borderline, not refused", "[engine]") {
  // tiny-8gpu's plan with the GPU's memory set so that its tensors take 80 % of it: with no
  // reserve it fits; with 0.2 (reserved = 1.2 x 80 % = 96 %) it still fits; with 0.3 (104 %)
  // it is borderline: it fits, the allocator may not. The default is the measured 0.145.
  const auto at = [](const std::string& reserve, double share) {
    std::vector<std::string> sets{"training.global_batch=8"};
    if (!reserve.empty()) sets.push_back("training.allocator_reserve=" + reserve);
    Scenario s = load_scenario(test::source_path("data/scenarios/tiny-8gpu.yaml"), sets, test::presets());
    const parallelism::Plan p = parallelism::make_plan(s);
    s.cluster.gpu.memory = Bytes::of(engine::memory_per_gpu(s, p).total().value() / share);
    return engine::memory_per_gpu(s, p);
  };
  const auto none = at("0", 0.8), low = at("0.2", 0.8), high = at("0.3", 0.8), def = at("", 0.8);
  CHECK(def.reserve_fraction == engine::kAllocatorReserve);
  CHECK(high.reserved().value() == Approx(1.3 * high.total().value()).epsilon(1e-12));
  for (const auto* m : {&none, &low, &high}) CHECK(m->fits());
  CHECK_FALSE(none.borderline());
  CHECK_FALSE(low.borderline());
  CHECK(high.borderline());
  CHECK_FALSE(high.over());
  // search and sweep carry results packed: the reserve goes with them.
  engine::StepResult packed;
  packed.memory = high;
  CHECK(engine::unpack_step(engine::pack(packed)).memory.borderline());
  // The wafer has no caching allocator: the key is refused there.
  const Scenario wafer = load_scenario(test::source_path("data/scenarios/llama3-8b-4xcs3.yaml"), {"training.allocator_reserve=0.1"}, test::presets());
  CHECK_THROWS_WITH(parallelism::make_plan(wafer), Catch::Contains("training.allocator_reserve: applies to GPU clusters"));
  // Over the capacity by more than 2 % stays refused, whatever the reserve.
  const auto over = at("0", 1.05);
  CHECK(over.over());
  CHECK_FALSE(over.borderline());
  for (const char* bad : {"1", "-0.1", "1.5"}) {
    INFO(bad);
    CHECK_THROWS_WITH(load_scenario(test::source_path("data/scenarios/tiny-8gpu.yaml"), {std::string("training.allocator_reserve=") + bad},
                                    test::presets()),
                      Catch::Contains("training.allocator_reserve: must be a fraction"));
  }
}

TEST_CASE("engine memory: the published plans of Llama 3 405B and DeepSeek-V3 fit their GPUs", "[engine]") {
  // Llama 3 405B as published (TP 8, PP 16, DP 128, one-layer interleaved chunks, ZeRO-2, no
  // recompute) on 80 GB H100s; DeepSeek-V3 (PP 16 DualPipe, EP 64, ZeRO-1, no TP, its norms, MLA
  // up-projections and MoE SwiGLU recomputed) on 80 GB H800s. Each fits with room to spare;
  // DeepSeek's without the recomputation does not. torchtitan's FSDP + TP + PP run of 405B
  // (FSDP 8 keeping each block's weights gathered, full recompute) fits Meta's 96 GB H100s.
  // The first two leave less room than the caching allocator's measured reserve, so they are
  // borderline: their tensors fit, the allocator may not (their frameworks' allocators are
  // not published); torchtitan's fits with it.
  for (const char* name : {"llama3-405b-16kxh100", "deepseek-v3-2048xh800", "llama3-405b-512xh100-torchtitan"}) {
    INFO(name);
    const Scenario s = load_scenario(test::source_path(std::string("data/scenarios/") + name + ".yaml"), {}, test::presets());
    const auto mem = engine::memory_per_gpu(s, parallelism::make_plan(s));
    CHECK(mem.fits());
    CHECK(mem.total().value() < (1.0 - engine::kBorderlineMemory) * mem.capacity.value());
    CHECK(mem.borderline() == (std::string(name) != "llama3-405b-512xh100-torchtitan"));
  }
  const Scenario none = load_scenario(test::source_path("data/scenarios/deepseek-v3-2048xh800.yaml"),
                                      {"parallel.recompute=none", "parallel.recompute_modules=[]"}, test::presets());
  CHECK(engine::memory_per_gpu(none, parallelism::make_plan(none)).over());
}

TEST_CASE("engine nccl_sms: NCCL's channels a data-parallel collective holds, by where its group lies", "[engine]") {
  // 2 nodes x 8 H100, ib-ndr between them (two channels for each GPU's NIC). A group of all 16
  // GPUs holds 2 x 8 = 16 SMs; one GPU a node: 2; four a node: 8. A group inside a node takes the
  // scale-up link's: nvswitch-h100's 24, or what the scenario says. On nodes of 4 GPUs a whole
  // node's group holds 8. Then a step: FSDP over both nodes runs longer with the channels held
  // than with none (0: copy-engine collectives). Bad values are refused, naming the key.
  const std::string cluster =
      "cluster: {gpu: h100-sxm, nodes: 2, gpus_per_node: 8, scale_up: nvswitch-h100,\n"
      "  scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 1}}\n"
      "model: {layers: 4, hidden: 4096, heads: 32, ffn: 14336, vocab: 128, activation: swiglu, tied_embeddings: true}\n"
      "training: {seq_len: 8192, global_batch: 16}\n";
  auto sms = [&](const std::vector<std::uint32_t>& group, const std::vector<std::string>& sets = {}) {
    const Scenario s = parse_scenario(cluster, "t.yaml", sets, test::presets());
    const auto t = topology::build_cluster(s.cluster);
    parallelism::Program p;
    for (std::uint32_t r = 0; r < s.cluster.gpus(); ++r) p.ranks.push_back({r, {}});
    p.groups.push_back(group);
    return engine::nccl_sms(s.cluster, p, t, 0);
  };
  std::vector<std::uint32_t> all(16);
  for (std::uint32_t r = 0; r < 16; ++r) all[r] = r;
  CHECK(sms(all) == 16);
  CHECK(sms({0, 8}) == 2);
  CHECK(sms({0, 1, 2, 3, 8, 9, 10, 11}) == 8);
  CHECK(sms({0, 1, 2, 3, 4, 5, 6, 7}) == 24);
  CHECK(sms({8, 9}) == 24);
  CHECK(sms({0, 1, 2, 3, 4, 5, 6, 7}, {"cluster.scale_up.nccl_channels=12"}) == 12);
  CHECK(sms(all, {"cluster.scale_out.nccl_channels_per_gpu=0"}) == 0);
  const std::vector<std::string> fours = {"cluster.nodes=4", "cluster.gpus_per_node=4"};
  CHECK(sms({0, 1, 2, 3, 4, 5, 6, 7}, fours) == 8);
  CHECK(sms({0, 4, 8, 12}, fours) == 2);
  auto step = [&](int channels) {
    const Scenario s = parse_scenario(cluster + "parallel: {dp: 16, zero: 3}\n", "t.yaml",
                                      {"cluster.scale_out.nccl_channels_per_gpu=" + std::to_string(channels)}, test::presets());
    const auto net = collectives::NetworkModel::build("analytic", "network");
    return engine::simulate_step_events(s, parallelism::make_plan(s), topology::build_cluster(s.cluster),
                                        engine::step_options(net.get())).step_time.value();
  };
  CHECK(step(2) > step(0));
  for (const char* bad : {"-1", "65"}) {
    CHECK_THROWS_WITH(parse_scenario(cluster, "t.yaml", {std::string("cluster.scale_out.nccl_channels_per_gpu=") + bad}, test::presets()),
                      Catch::Matchers::Contains("cluster.scale_out.nccl_channels_per_gpu"));
  }
  // On a GPU of 100 SMs, 7 channels a GPU x 8 = 56 a collective, 112 for a gather and a scatter
  // at once: refused; 6 (96) is not. Inside a node: 50 of the scale-up link's, refused.
  const std::string small = "cluster.gpu.sms=100";
  CHECK_THROWS_WITH(parse_scenario(cluster, "t.yaml", {small, "cluster.scale_out.nccl_channels_per_gpu=7"}, test::presets()),
                    Catch::Matchers::Contains("cluster.scale_out.nccl_channels_per_gpu: gives 56 SMs a collective"));
  CHECK_NOTHROW(parse_scenario(cluster, "t.yaml", {small, "cluster.scale_out.nccl_channels_per_gpu=6"}, test::presets()));
  CHECK_THROWS_WITH(parse_scenario(cluster, "t.yaml", {small, "cluster.scale_up.nccl_channels=50"}, test::presets()),
                    Catch::Matchers::Contains("cluster.scale_up.nccl_channels: gives 50 SMs"));
}

TEST_CASE("engine composed ZeRO-2: each layer's gradients are reduce-scattered as the backward reaches them, one at a time",
          "[engine]") {
  // 1 node x 4 H100, DP 4, ZeRO-2, 8 equal layers, one micro-batch per GPU. The backward of
  // length B sweeps the n = 8 layers; layer i's reduce-scatter (time r, alone on the
  // data-parallel stream) may leave once (i + 1)/n of it is done. Where r > B/n (a slow
  // switch) they queue behind the first: the k-th (k = 1..n) ends at B0 + B/n + k r. Where r <
  // B/n (a fast one) each waits for its layer: B0 + k B/n + r.
  auto check = [](const std::string& switch_spec, bool queued) {
    const std::string text = "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 4, scale_up: " + switch_spec + "}\n"
                             "model: {layers: 8, hidden: 2048, heads: 16, kv_heads: 8, ffn: 8192, vocab: 8}\n"
                             "training: {seq_len: 4096, global_batch: 4}\nparallel: {dp: 4, zero: 2}\n";
    const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
    const auto plan = parallelism::make_plan(s);
    REQUIRE(plan.micro_batches == 1);
    const auto t = topology::build_cluster(s.cluster);
    const auto net = collectives::NetworkModel::build("analytic", "network");
    auto o = engine::step_options(net.get());
    o.timeline = true;
    const auto res = engine::simulate_step(s, plan, t, o);
    const double layer_grads = plan.grad_bytes * parallelism::count_params(*s.model).dense_layer;
    const std::vector<topology::NodeId> g{0, 1, 2, 3};
    const double r =
        collectives::choose_schedule(t, collectives::Op::kReduceScatter, g, Bytes::of(layer_grads), {}, {}, std::nullopt, *net).time.value();
    double b0 = -1, b1 = -1;
    std::vector<std::pair<double, double>> links;  // each reduce-scatter's start and end, in time order
    for (const auto& e : res.timeline) {
      if (e.name == "backward mb 0") b0 = e.start.value(), b1 = e.end.value();
      if (e.name.find("ZeRO reduce-scatter layer") != std::string::npos) links.emplace_back(e.start.value(), e.end.value());
    }
    REQUIRE(b0 >= 0);
    REQUIRE(links.size() == 8);
    std::sort(links.begin(), links.end());
    const double B = b1 - b0;
    INFO("B/n " << B / 8 << " s, r " << r << " s");
    CHECK((queued ? r > B / 8 : r < B / 8));
    for (int k = 1; k <= 8; ++k) {
      INFO("reduce-scatter " << k);
      CHECK(links[k - 1].second - links[k - 1].first == Approx(r).epsilon(1e-9));
      CHECK(links[k - 1].second == Approx(queued ? b0 + B / 8 + k * r : b0 + k * B / 8 + r).epsilon(1e-9));
    }
    // The optimizer waits for the last of them: nothing of it starts before.
    int optimizers = 0;
    for (const auto& e : res.timeline) {
      if (e.name.find("optimizer") == std::string::npos) continue;
      ++optimizers;
      CHECK(e.start.value() >= links.back().second - 1e-12);
    }
    CHECK(optimizers == 1);
  };
  check("{bandwidth: 20 GB/s, latency: 1 us}", true);
  check("{bandwidth: 1 PB/s, latency: 1 us}", false);
}

TEST_CASE("engine composed HBM bytes: two-pass kernels three times, one-pass kernels once, recompute's again", "[engine]") {
  // One H100, two micro-batches, FP8 (its casts run in one pass: forward-only and
  // backward-only kernels). A kernel that runs forward and backward moves its bytes once
  // forward and about twice backward (its data and weight gradients); a one-pass kernel once.
  // Recompute runs the forward again before the backward: selective only core attention, full
  // every forward kernel. The optimizer reads gradients, master weights and moments and writes
  // weights and moments: params x (grad + 2 x optimizer + 2 weight) bytes.
  for (const char* recompute : {"none", "selective", "full"}) {
    INFO("recompute " << recompute);
    const std::string text =
        "cluster: {gpu: h100-sxm, nodes: 1, gpus_per_node: 1}\n"
        "model: {layers: 2, hidden: 4096, heads: 32, kv_heads: 8, ffn: 14336, vocab: 32000}\n"
        "training: {seq_len: 4096, global_batch: 2, precision: fp8}\nparallel: {recompute: " + std::string(recompute) + "}\n";
    const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
    const auto plan = parallelism::make_plan(s);
    REQUIRE(plan.micro_batches == 2);
    const auto shard = parallelism::shard_of(*s.model, plan);
    struct Sums {
      double both = 0, forward = 0, backward = 0, attention = 0;
    };
    auto sums = [](const std::vector<parallelism::Kernel>& ks) {
      Sums x;
      for (const auto& k : ks) {
        (k.pass == parallelism::KernelPass::kBoth ? x.both : k.pass == parallelism::KernelPass::kForward ? x.forward : x.backward) +=
            k.bytes.value();
        if (k.core_attention) x.attention += k.bytes.value();
      }
      return x;
    };
    const Sums layer = sums(parallelism::layer_forward(*s.model, 0, shard)), head = sums(parallelism::head_forward(*s.model, shard));
    REQUIRE(layer.forward > 0.0);
    REQUIRE(layer.backward > 0.0);
    REQUIRE(layer.attention > 0.0);
    const double again = recompute == std::string("none") ? 0.0
                         : recompute == std::string("selective") ? layer.attention
                                                                 : layer.both + layer.forward;
    const double per_micro_batch = 2 * (3 * layer.both + layer.forward + layer.backward + again) +
                                   3 * head.both + head.forward + head.backward;
    const double params = parallelism::count_params(*s.model).total;
    const double adam = params * (plan.grad_bytes + 2 * plan.optimizer_bytes + 2);
    CHECK(run(text).hbm_bytes.value() == Approx(2 * per_micro_batch + adam).epsilon(1e-12));
  }
}

TEST_CASE("engine the event engine's timeline shows at most 64 rank classes, each stage's first rank's among them", "[engine]") {
  // 128 GPUs on an ECMP fat-tree, DP 128 under `flow`: the links the rings share split the
  // ranks into more than 64 classes; the timeline (what --trace and /timeline write) shows 64
  // of them, rank 0's (the stage's first) included.
  const std::string text =
      "cluster: {gpu: h100-sxm, nodes: 128, gpus_per_node: 1, scale_out: {topology: fat-tree, k: 8, levels: 3, bandwidth: 50 GB/s}}\n"
      "model: {layers: 2, hidden: 256, ffn: 1024, vocab: 512, heads: 4, kv_heads: 4}\n"
      "training: {seq_len: 128, global_batch: 128, micro_batch: 1}\nparallel: {dp: 128}\n";
  const Scenario s = parse_scenario(text, "t.yaml", {}, test::presets());
  const auto plan = parallelism::make_plan(s);
  const auto t = topology::build_cluster(s.cluster);
  const auto net = collectives::NetworkModel::build("flow", "network");
  auto o = engine::step_options(net.get());
  o.timeline = true;
  const auto r = engine::simulate_step_events(s, plan, t, o);
  REQUIRE(r.rank_classes > engine::kShownClasses);
  std::set<int> shown;
  for (const auto& e : r.timeline) shown.insert(e.rank);
  CHECK(shown.size() == engine::kShownClasses);
  CHECK(shown.count(0) == 1);
}
