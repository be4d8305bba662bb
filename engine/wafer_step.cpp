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
// pp = tp = 1). Energy: every wafer at its system's full-load power for the whole step ([A]:
// the wafer's draw is not modelled by activity), plus the streamed bits at the I/O link's
// energy per bit.
#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "core/error.hpp"
#include "engine/wafer_step.hpp"
#include "parallelism/model_math.hpp"
#include "wafer/gemm.hpp"

namespace wallsim::engine {

namespace {

using parallelism::Kernel;
using parallelism::KernelKind;

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
      double time = 0.0, bwd = 0.0;
      if (k.kind == KernelKind::kGemm && k.rows > 0) {
        const auto& g = gemm(static_cast<long long>(k.rows), static_cast<long long>(k.depth),
                             static_cast<long long>(k.cols));
        time = g.time.value() * k.batch;
        if (attention_rate == 0.0) attention_rate = k.flops.value() / time;
        bwd = 2.0 * time;  // the data and weight gradients, each a GEMM of the forward's size
        t.mesh_bytes += mesh_bytes_.at(key(k)) * k.batch * 3.0;
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
  static std::tuple<long long, long long, long long> key(const Kernel& k) {
    return {static_cast<long long>(k.rows), static_cast<long long>(k.depth), static_cast<long long>(k.cols)};
  }
  const wafer::GemmResult& gemm(long long rows, long long depth, long long cols) {
    const auto k = std::make_tuple(rows, depth, cols);
    auto it = cache_.find(k);
    if (it == cache_.end()) {
      const auto r = wafer::best_gemm(m_, {rows, depth, cols});
      if (!r.valid) throw Error("cluster.gpu", "no distributed GEMM of " + std::to_string(rows) + "x" +
                                                   std::to_string(depth) + "x" + std::to_string(cols) +
                                                   " runs on the wafer: " + r.why);
      // Bytes on the mesh: every core receives an A and a B block at each of the p steps.
      const double p = r.grid, bm = std::ceil(static_cast<double>(rows) / p), bk = std::ceil(static_cast<double>(depth) / p),
                   bn = std::ceil(static_cast<double>(cols) / p);
      mesh_bytes_[k] = p * p * p * 2.0 * (bm * bk + bk * bn);
      it = cache_.emplace(k, r).first;
    }
    return it->second;
  }
  const Scenario& sc_;
  const wafer::MeshSpec& m_;
  std::map<std::tuple<long long, long long, long long>, wafer::GemmResult> cache_;
  std::map<std::tuple<long long, long long, long long>, double> mesh_bytes_;
};

double layer_params(const ModelSpec& m, int i) {
  const auto pc = parallelism::count_params(m);
  return parallelism::is_moe_layer(m, i) ? pc.moe_layer : pc.dense_layer;
}

}  // namespace

bool is_wafer(const ClusterSpec& c) { return c.gpu.cores > 0; }

Memory wafer_memory(const Scenario& sc, const parallelism::Plan& p, const Memory& gpu_model) {
  require_wafer_plan(p);
  const ModelSpec& m = *sc.model;
  double largest = 0.0;
  for (int i = 0; i < m.layers; ++i) largest = std::max(largest, layer_params(m, i));
  Memory mem;
  mem.capacity = sc.cluster.gpu.memory;
  mem.weights = Bytes::of(2.0 * kWeightBytes * largest);
  mem.gradients = Bytes::of(kGradBytes * largest);
  mem.activations = gpu_model.activations;
  return mem;
}

StepResult simulate_wafer_step(const Scenario& sc, const parallelism::Plan& p, const StepOptions& o) {
  require_wafer_plan(p);
  const ModelSpec& m = *sc.model;
  const wafer::MeshSpec mesh = wafer::mesh_of(sc.cluster);
  if (!sc.cluster.scale_out || !(sc.cluster.scale_out->link.payload().value() > 0)) {
    throw Error("cluster.scale_out", "a wafer streams its weights through the system I/O: give its bandwidth");
  }
  const double io = sc.cluster.scale_out->link.payload().value();
  const double io_energy = sc.cluster.scale_out->link.energy.value();
  WaferKernels kernels(sc, mesh);
  const auto shard = shard_of(m, p);
  StepResult r;
  r.memory = memory_per_gpu(sc, p);
  r.clock = sc.cluster.gpu.boost_clock;
  double per_pass = 0.0, compute = 0.0, flops_model = 0.0, flops_hw = 0.0, mesh_bytes = 0.0, streamed = 0.0;
  std::map<int, PassTimes> by_kind;  // dense / MoE layers cost the same each time
  for (int i = 0; i < m.layers; ++i) {
    const int kind = parallelism::is_moe_layer(m, i) ? 1 : 0;
    auto it = by_kind.find(kind);
    if (it == by_kind.end()) it = by_kind.emplace(kind, kernels.pass(parallelism::layer_forward(m, i, shard), p.recompute)).first;
    const PassTimes& t = it->second;
    const double stream = kWeightBytes * layer_params(m, i) / io;
    per_pass += std::max(t.forward, stream) + std::max(t.backward, stream);
    compute += t.forward + t.backward;
    flops_model += t.model_flops;
    flops_hw += t.hw_flops;
    mesh_bytes += t.mesh_bytes;
    streamed += 2.0 * kWeightBytes * layer_params(m, i);  // weights in twice (forward, backward)
    streamed += kGradBytes * layer_params(m, i);          // gradients out
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
  const double tokens = static_cast<double>(p.global_batch * p.seq_len);
  r.tokens_per_s = tokens / step;
  r.model_flops_per_gpu = FlopRate::of(passes * flops_model / step);
  r.hardware_flops_per_gpu = FlopRate::of(passes * flops_hw / step);
  const double peak = sc.cluster.gpu.bf16_dense.value();
  r.mfu = r.model_flops_per_gpu.value() / peak;
  r.hfu = r.hardware_flops_per_gpu.value() / peak;
  r.scale_up_bytes = Bytes::of(passes * mesh_bytes * wafers);
  r.scale_out_bytes = Bytes::of(passes * streamed * wafers);
  const double energy = wafers * sc.cluster.gpu.tdp.value() * step + r.scale_out_bytes.value() * 8.0 * io_energy;
  r.step_energy = Joules::of(energy);
  r.energy_per_token_j = energy / tokens;
  r.cluster_avg_power = Watts::of(energy / step);
  r.gpu_avg_power = Watts::of(energy / step / wafers);
  StageTimes st;
  st.compute = r.compute;
  st.comm = r.exposed_comm;
  st.energy = Joules::of(energy / wafers);
  r.stages.push_back(st);
  r.stage_busy.push_back(r.compute);
  if (o.link_bytes) r.link_bytes.clear();  // per-link bytes are not traced on a wafer's mesh
  return r;
}

}  // namespace wallsim::engine
