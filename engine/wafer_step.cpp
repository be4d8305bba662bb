// A training step on a wafer-scale cluster, in weight-streaming mode (as Cerebras CS systems
// train models larger than a wafer's SRAM: weights live in external memory — MemoryX — and
// are streamed to the wafers layer by layer through the system I/O; gradients stream back;
// the optimizer runs off-wafer; activations stay on the wafer). Every wafer is a data-parallel
// replica: one broadcast stream of weights serves all of them (SwarmX), so a wafer's stream
// rate is its own I/O link.
//
// Per layer and pass: the forward takes max(its kernels on the mesh, weights / I/O
// bandwidth) — the next layer's weights stream in while this one computes — and the backward
// max(2x the forward GEMMs and the recompute, weights / I/O) (weights in and gradients out
// use the two directions of the link). A GEMM runs as the fastest valid distributed GEMM
// (SUMMA, Cannon or MeshGEMM, wafer/gemm.hpp) on the wafer's mesh; fused attention runs at
// the rate the layer's first GEMM reaches ([A] assumption: no wafer attention kernel is
// modelled); element-wise kernels stream their bytes at the SRAM bandwidth.
//
// Memory on the wafer: two layers' weights (double buffer), one layer's gradients, and the
// activations of one micro-batch through all layers (the GPU model's activations with
// pp = tp = 1). Energy, as a GPU's: the system's idle power over the step, the rest of its
// TDP while computing, the mesh's bit crossings at the on-wafer link's energy per bit, and
// the streamed bits at the I/O link's.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "core/error.hpp"
#include "engine/wafer_step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/model_math.hpp"
#include "wafer/gemm.hpp"

namespace wallsim::engine {

namespace {

using parallelism::Kernel;
using parallelism::KernelKind;
using parallelism::KernelPass;

void require_wafer_plan(const parallelism::Plan& p) {
  if (p.tp != 1 || p.pp != 1 || p.cp != 1 || p.ep != 1) {
    throw Error("parallel", "a wafer-scale cluster trains data parallel across wafers (weight streaming): tp, pp, "
                            "cp and ep must be 1, each wafer holding a whole replica's activations");
  }
  if (p.zero != 0) {
    throw Error("parallel.zero", "weight streaming keeps weights and optimizer state off the wafer: zero must be 0");
  }
}

struct PassTimes {
  double forward = 0, backward = 0;  // compute on the mesh
  double model_flops = 0, hw_flops = 0, mesh_bytes = 0;
};

class WaferKernels {
 public:
  WaferKernels(const Scenario& sc, const wafer::MeshSpec& m) : sc_(sc), m_(m) {}

  /// One pass over `kernels` (a layer's forward, or the head's).
  PassTimes pass(const std::vector<Kernel>& kernels, parallelism::Recompute recompute) {
    PassTimes t;
    double attention_rate = 0.0;  // FLOP/s of the layer's first GEMM
    for (const auto& k : kernels) {
      if (k.pass != KernelPass::kBoth) continue;  // FP8's casts: the wafer model has no FP8 path
      double time = 0.0, bwd = 0.0;
      if (k.kind == KernelKind::kGemm && k.rows > 0) {
        const auto& g = gemm(static_cast<long long>(k.rows), static_cast<long long>(k.depth),
                             static_cast<long long>(k.cols));
        time = g.time.value() * k.batch;
        if (attention_rate == 0.0) attention_rate = k.flops.value() / time;
        bwd = 2.0 * time;  // the data and weight gradients, each a GEMM of the forward's size
        t.mesh_bytes += g.link_bytes.value() * k.batch * 3.0;  // the forward and its two gradients
      } else if (k.kind == KernelKind::kGemm || k.kind == KernelKind::kAttention) {
        const double rate = attention_rate > 0 ? attention_rate : m_.flops.value() * m_.units();
        time = k.flops.value() / rate;
        bwd = 2.0 * time;
      } else {
        time = k.bytes.value() / sc_.cluster.gpu.memory_bandwidth.value();
        bwd = time;
      }
      const bool redo = recompute == parallelism::Recompute::kFull ||
                        (recompute == parallelism::Recompute::kSelective && k.core_attention);
      t.forward += time;
      t.backward += bwd + (redo ? time : 0.0);
      const double counted = k.kind == KernelKind::kElementwise ? 0.0 : k.flops.value();
      t.model_flops += 3.0 * counted * k.useful;
      t.hw_flops += 3.0 * counted + (redo ? counted : 0.0);
    }
    return t;
  }

 private:
  const wafer::GemmResult& gemm(long long rows, long long depth, long long cols) {
    const auto k = std::make_tuple(rows, depth, cols);
    auto it = cache_.find(k);
    if (it == cache_.end()) {
      const auto r = wafer::best_gemm(m_, {rows, depth, cols});
      if (!r.valid) throw Error("cluster.gpu", "no distributed GEMM of " + std::to_string(rows) + "x" +
                                                   std::to_string(depth) + "x" + std::to_string(cols) +
                                                   " runs on the wafer: " + r.why);
      it = cache_.emplace(k, r).first;
    }
    return it->second;
  }
  const Scenario& sc_;
  const wafer::MeshSpec& m_;
  std::map<std::tuple<long long, long long, long long>, wafer::GemmResult> cache_;
};

/// Layer i's parameters on a wafer: all of them (a wafer's plan splits no layer, tp and ep 1).
double layer_params(const ModelSpec& m, const parallelism::Plan& p, int i) {
  const auto lp = parallelism::layer_params(m, parallelism::count_params(m), p, i);
  return lp.dense + lp.expert;
}

}  // namespace

bool is_wafer(const ClusterSpec& c) { return c.gpu.cores > 0; }

Memory wafer_memory(const Scenario& sc, const parallelism::Plan& p, const Memory& gpu_model) {
  require_wafer_plan(p);
  const ModelSpec& m = *sc.model;
  if (p.wafer_pipelined) {  // the whole model state on the wafer, and every stage's activations in flight
    const auto pc = parallelism::count_params(m);
    Memory mem;
    mem.capacity = sc.cluster.gpu.memory;
    mem.weights = Bytes::of(kWeightBytes * pc.total);
    mem.gradients = Bytes::of(kGradBytes * pc.total);
    mem.optimizer = Bytes::of(p.optimizer_bytes * pc.total);
    // 1F1B over layers + 1 stages: stage l holds (stages - l) micro-batches; on average half.
    mem.activations = gpu_model.activations * ((m.layers + 2) / 2.0);
    return mem;
  }
  // Weight streaming: the external store holds every weight and its optimizer state.
  if (const auto& ext = sc.cluster.external_memory) {
    const double params = parallelism::count_params(m).total;
    const double per_param = kWeightBytes + kGradBytes + p.optimizer_bytes;
    if (per_param * params > ext->value()) {
      throw Error("cluster.external_memory",
                  to_string(*ext) + " holds the weights, gradients and optimizer state (" + format_number(per_param) +
                      " B each) of " + format_number(ext->value() / per_param / 1e9) + "B parameters; " + m.name +
                      " has " + format_number(params / 1e9) + "B");
    }
  }
  double largest = 0.0;
  for (int i = 0; i < m.layers; ++i) largest = std::max(largest, layer_params(m, p, i));
  Memory mem;
  mem.capacity = sc.cluster.gpu.memory;
  mem.weights = Bytes::of(2.0 * kWeightBytes * largest);
  mem.gradients = Bytes::of(kGradBytes * largest);
  mem.activations = gpu_model.activations;
  return mem;
}

namespace {

/// Pipelined mode: every layer (and the head) resident in its own square region of the mesh,
/// sized by its share of the FLOPs ([A] the regions are assumed to pack the wafer; placement
/// is not modelled); micro-batches flow through the regions as through pipeline stages.
StepResult pipelined_step(const Scenario& sc, const parallelism::Plan& p, const wafer::MeshSpec& mesh) {
  const ModelSpec& m = *sc.model;
  const auto shard = shard_of(m, p);
  const int stages = m.layers + 1;
  const auto pc = parallelism::count_params(m);
  // FLOPs per stage (forward kernels), to size the regions.
  std::vector<std::vector<Kernel>> kernels;
  std::vector<double> flops;
  double total = 0.0;
  for (int i = 0; i <= m.layers; ++i) {
    kernels.push_back(i < m.layers ? parallelism::layer_forward(m, i, shard) : parallelism::head_forward(m, shard));
    double f = 0.0;
    for (const auto& k : kernels.back()) f += k.kind == KernelKind::kElementwise ? 0.0 : k.flops.value();
    flops.push_back(f);
    total += f;
  }
  const Memory gpu = memory_per_gpu(sc, p);
  const double act_per_stage_mb = gpu.activations.value() / ((m.layers + 2) / 2.0) / m.layers;
  StepResult r;
  r.memory = gpu;
  double slowest = 0.0, flops_model = 0.0, flops_hw = 0.0, mesh_bytes = 0.0, worst_sram = 0.0;
  int worst_stage = 0;
  std::map<std::pair<int, int>, PassTimes> done;  // (kind, side) -> pass
  for (int i = 0; i < stages; ++i) {
    const int side = std::max(1, static_cast<int>(std::floor(std::sqrt(static_cast<double>(mesh.units()) * flops[i] / total))));
    wafer::MeshSpec region = mesh;
    region.x = region.y = std::min({side, mesh.x, mesh.y});
    const int kind = i == m.layers ? 2 : parallelism::is_moe_layer(m, i) ? 1 : 0;
    auto it = done.find({kind, region.x});
    if (it == done.end()) {
      WaferKernels wk(sc, region);
      it = done.emplace(std::make_pair(kind, region.x), wk.pass(kernels[static_cast<size_t>(i)], i == m.layers ? parallelism::Recompute::kNone : p.recompute)).first;
    }
    const PassTimes& t = it->second;
    // Activations cross to the next region over its edge: side links, about side hops away.
    const double act = 2.0 * static_cast<double>(p.micro_batch * p.seq_len * m.hidden);
    const double hop = act / (region.x * mesh.link.value()) + region.x * mesh.hop.value();
    slowest = std::max(slowest, t.forward + t.backward + 2.0 * hop);
    flops_model += t.model_flops;
    flops_hw += t.hw_flops;
    mesh_bytes += t.mesh_bytes;
    // SRAM per core: the stage's weights, gradients and optimizer state, and its in-flight activations.
    const double params = i < m.layers ? layer_params(m, p, i) : pc.total - static_cast<double>(m.layers) * pc.dense_layer;
    const double in_flight = stages - i;
    const double sram = ((kWeightBytes + kGradBytes + p.optimizer_bytes) * std::max(0.0, params) +
                         act_per_stage_mb * in_flight) / (static_cast<double>(region.x) * region.y);
    if (sram > worst_sram) {
      worst_sram = sram;
      worst_stage = i;
    }
  }
  if (mesh.sram.value() > 0 && worst_sram > mesh.sram.value()) {
    throw Error("parallel.wafer_mode", "pipelined: layer " + std::to_string(worst_stage) + "'s region needs " +
                                           to_string(Bytes::of(worst_sram)) + " per core (its weights, gradients, "
                                           "optimizer state and activations in flight); a core has " +
                                           to_string(mesh.sram) + ": use weight streaming");
  }
  const double micro = static_cast<double>(p.micro_batches);
  const double pipeline = (micro + stages - 1) * slowest;
  // Adam on the wafer (SRAM-bound), then the gradients all-reduced across wafers over the I/O.
  const double optimizer = parallelism::optimizer_kernel(p, pc.total).bytes.value() / sc.cluster.gpu.memory_bandwidth.value();
  const double wafers = static_cast<double>(p.gpus());
  const double io = sc.cluster.scale_out->link.payload().value();
  const double reduce = wafers > 1 ? 2.0 * (wafers - 1) / wafers * kGradBytes * pc.total / io : 0.0;
  const double step = pipeline + optimizer + reduce;
  r.step_time = Seconds::of(step);
  r.compute = Seconds::of(micro * slowest);
  r.bubble = Seconds::of((stages - 1) * slowest);
  r.other = Seconds::of(optimizer);
  r.exposed_comm = Seconds::of(reduce);
  r.model_flops_per_gpu = FlopRate::of(micro * flops_model / step);
  r.hardware_flops_per_gpu = FlopRate::of(micro * flops_hw / step);
  r.scale_up_bytes = Bytes::of(micro * mesh_bytes * wafers);
  r.scale_out_bytes = Bytes::of(wafers > 1 ? 2.0 * (wafers - 1) * kGradBytes * pc.total : 0.0);
  return r;
}

/// Weight-streaming mode (see the top of this file).
StepResult streaming_step(const Scenario& sc, const parallelism::Plan& p, const wafer::MeshSpec& mesh) {
  const ModelSpec& m = *sc.model;
  const double io = sc.cluster.scale_out->link.payload().value();
  WaferKernels kernels(sc, mesh);
  const auto shard = shard_of(m, p);
  StepResult r;
  r.memory = memory_per_gpu(sc, p);
  double per_pass = 0.0, compute = 0.0, flops_model = 0.0, flops_hw = 0.0, mesh_bytes = 0.0, streamed = 0.0;
  std::map<int, PassTimes> by_kind;  // dense / MoE layers cost the same each time
  for (int i = 0; i < m.layers; ++i) {
    const int kind = parallelism::is_moe_layer(m, i) ? 1 : 0;
    auto it = by_kind.find(kind);
    if (it == by_kind.end()) it = by_kind.emplace(kind, kernels.pass(parallelism::layer_forward(m, i, shard), p.recompute)).first;
    const PassTimes& t = it->second;
    const double stream = kWeightBytes * layer_params(m, p, i) / io;
    per_pass += std::max(t.forward, stream) + std::max(t.backward, stream);
    compute += t.forward + t.backward;
    flops_model += t.model_flops;
    flops_hw += t.hw_flops;
    mesh_bytes += t.mesh_bytes;
    streamed += 2.0 * kWeightBytes * layer_params(m, p, i);  // weights in twice (forward, backward)
    streamed += kGradBytes * layer_params(m, p, i);          // gradients out
    if (i == 0) {
      r.layer_forward = Seconds::of(std::max(t.forward, stream));
      r.layer_backward = Seconds::of(std::max(t.backward, stream));
    }
  }
  const PassTimes head = kernels.pass(parallelism::head_forward(m, shard), parallelism::Recompute::kNone);
  per_pass += head.forward + head.backward;
  compute += head.forward + head.backward;
  flops_model += head.model_flops;
  flops_hw += head.hw_flops;
  mesh_bytes += head.mesh_bytes;
  const double passes = static_cast<double>(p.micro_batches);
  const double wafers = static_cast<double>(p.gpus());
  const double step = passes * per_pass;
  r.step_time = Seconds::of(step);
  r.compute = Seconds::of(passes * compute);
  r.exposed_comm = Seconds::of(step - passes * compute);  // waiting for streamed weights
  r.model_flops_per_gpu = FlopRate::of(passes * flops_model / step);
  r.hardware_flops_per_gpu = FlopRate::of(passes * flops_hw / step);
  r.scale_up_bytes = Bytes::of(passes * mesh_bytes * wafers);
  r.scale_out_bytes = Bytes::of(passes * streamed * wafers);
  return r;
}

}  // namespace

void check_wafer_network(const ClusterSpec& c, const std::string& network, const std::string& path) {
  if (is_wafer(c) && network != "analytic") {
    throw Error(path, "'" + network + "' does not apply to the wafer step: it has one model, closed forms on the "
                      "mesh and each system's own I/O link (no shared link for a flow model to share); use analytic "
                      "or leave --network out (`wallsim wafer --network flow` checks the mesh collectives)");
  }
}

StepResult simulate_wafer_step(const Scenario& sc, const parallelism::Plan& p, const StepOptions& o) {
  if (o.power_cap.value() != 0.0) hardware::check_power_cap(sc.cluster.gpu, o.power_cap, "--power-cap");
  if (sc.cluster.power_cap) hardware::check_power_cap(sc.cluster.gpu, *sc.cluster.power_cap, "cluster.power_cap");
  require_wafer_plan(p);
  const wafer::MeshSpec mesh = wafer::mesh_of(sc.cluster);
  if (!sc.cluster.scale_out || !(sc.cluster.scale_out->link.payload().value() > 0)) {
    throw Error("cluster.scale_out", "a wafer-scale cluster needs its systems' I/O link bandwidth");
  }
  StepResult r = p.wafer_pipelined ? pipelined_step(sc, p, mesh) : streaming_step(sc, p, mesh);
  r.clock = sc.cluster.gpu.boost_clock;
  const double step = r.step_time.value();
  const double wafers = static_cast<double>(p.gpus());
  const double tokens = static_cast<double>(p.global_batch * p.seq_len);
  r.tokens_per_s = tokens / step;
  const double peak = sc.cluster.gpu.bf16_dense.value();
  r.mfu = r.model_flops_per_gpu.value() / peak;
  r.hfu = r.hardware_flops_per_gpu.value() / peak;
  // As a GPU's: static power over the step, the dynamic part while computing, and the bits
  // moved at the mesh's and the I/O link's own energy per bit.
  const auto& gpu = sc.cluster.gpu;
  const double energy = wafers * (gpu.idle_power.value() * step + (gpu.tdp - gpu.idle_power).value() * r.compute.value()) +
                        r.scale_up_bytes.value() * 8.0 * sc.cluster.scale_up.energy.value() +
                        r.scale_out_bytes.value() * 8.0 * sc.cluster.scale_out->link.energy.value();
  r.step_energy = Joules::of(energy);
  r.energy_per_token_j = energy / tokens;
  r.cluster_avg_power = Watts::of(energy / step);
  r.gpu_avg_power = Watts::of(energy / step / wafers);
  StageTimes st;
  st.compute = r.compute;
  st.comm = r.exposed_comm;
  st.bubble = r.bubble;
  st.other = r.other;
  st.energy = Joules::of(energy / wafers);
  r.stages.push_back(st);
  r.stage_busy.push_back(r.compute);
  if (o.link_bytes) r.link_bytes.clear();  // per-link bytes are not traced on a wafer's mesh
  return r;
}

}  // namespace wallsim::engine
