#include "engine/step.hpp"

#include <cmath>
#include <optional>

#include "core/error.hpp"
#include "engine/composed_step.hpp"
#include "engine/distribute.hpp"
#include "engine/wafer_step.hpp"
#include "parallelism/layout.hpp"

namespace wallsim::engine {

using parallelism::Plan;

std::vector<Straggler> stragglers(const Scenario& sc, const Plan& p) {
  std::vector<Straggler> out;
  if (!sc.cluster.slow_gpus) return out;
  for (long long g : sc.cluster.slow_gpus->gpus) {
    if (g < p.gpus()) out.push_back({static_cast<int>(g), parallelism::coords_of(p, g).pp, sc.cluster.slow_gpus->speed});
  }
  return out;
}

Memory memory_per_gpu(const Scenario& sc, const Plan& p) {
  const Memory gpu = parallelism::gpu_memory(sc, p);
  if (!is_wafer(sc.cluster)) return gpu;
  Memory w = wafer_memory(sc, p, gpu);
  w.stages = {{w.stage, w.weights, w.gradients, w.optimizer, w.activations, w.buffers}};
  return w;
}

namespace {
/// A step whose time or energy overflowed came from GPU figures out of any physical range.
StepResult finite(StepResult r, const GpuSpec& gpu) {
  if (!std::isfinite(r.step_time.value()) || !std::isfinite(r.step_energy.value()) || !(r.step_time.value() > 0.0)) {
    throw Error("cluster.gpu", "the step on '" + gpu.name + "' takes no finite time or energy: the figures behind it (the "
                               "GPU's peaks, efficiencies and gemm_depth_overhead, the links' energy per bit) are out "
                               "of range");
  }
  return r;
}
}  // namespace

Watts power_cap_of(const Scenario& sc, const StepOptions& o) {
  if (o.power_cap.value() != 0.0 || !sc.cluster.power_cap) return o.power_cap;
  hardware::check_power_cap(sc.cluster.gpu, *sc.cluster.power_cap, "cluster.power_cap");
  return *sc.cluster.power_cap;
}

StepResult within_cap(const Scenario& sc, const Plan& p, const StepOptions& o,
                      const std::function<StepResult(const StepOptions&, Watts)>& once) {
  // Both passes share one cache of collective costs (they do not depend on the clock); the
  // options are copied only to add it or the scenario's cap (they hold per-link loads).
  std::optional<StepOptions> own;
  if (sc.cluster.power_cap && o.power_cap.value() == 0.0) {
    own = o;
    own->power_cap = power_cap_of(sc, o);
  }
  if (!o.cache) {
    if (!own) own = o;
    own->cache = make_comm_cache();
  }
  const StepOptions& q = own ? *own : o;
  StepResult r = finite(once(q, Watts{}), sc.cluster.gpu);
  if (sc.cluster.gpu.boost_clock.value() <= 0.0) return r;  // no clocks: no DVFS to hold a cap with
  const hardware::GpuModel gpu(sc.cluster.gpu, {.power_cap = q.power_cap, .precision = hardware::gemm_precision(p.fp8(), p.fp8_blockwise)});
  const double gpus = static_cast<double>(p.gpus());
  const Watts reserve = gpu.reserve_for(r.step_time, r.compute + r.other, r.step_energy / gpus);
  return reserve.value() > 0.0 ? finite(once(q, reserve), sc.cluster.gpu) : r;
}

StepResult simulate_step(const Scenario& sc, const Plan& p, const topology::Topology& t, const StepOptions& o) {
  if (is_wafer(sc.cluster)) {
    if (sc.cluster.slow_gpus) throw Error("cluster.slow_gpus", "applies to GPU clusters, not to a wafer");
    return finite(simulate_wafer_step(sc, p, o), sc.cluster.gpu);
  }
  if (o.network == nullptr) throw std::logic_error("simulate_step: no network model");
  if (const std::string key = p.event_engine_only(); !key.empty()) {
    throw Error(key, "runs on the event engine (run and sweep's default), not the composed step (--engine composed, "
                     "search, validate)");
  }
  return within_cap(sc, p, o, [&](const StepOptions& q, Watts reserve) { return composed_step(sc, p, t, q, reserve); });
}

namespace {

template <class IO, class R>
void fields(IO& io, R& r) {
  io(r.step_time, r.tokens_per_s, r.mfu, r.hfu, r.model_flops_per_gpu, r.hardware_flops_per_gpu, r.compute,
     r.exposed_comm, r.bubble, r.other, r.memory.weights, r.memory.gradients, r.memory.optimizer,
     r.memory.activations, r.memory.buffers, r.memory.capacity, r.memory.stage, r.memory.stages, r.memory.reserve_fraction,
     r.step_energy,
     r.energy_per_token_j,
     r.gpu_avg_power, r.cluster_avg_power, r.clock, r.hbm_bytes, r.scale_up_bytes, r.scale_out_bytes, r.stage_busy,
     r.layer_forward, r.layer_backward, r.stages, r.link_bytes, r.stragglers, r.rank_classes, r.classes_exact);
}

}  // namespace

std::string pack(const StepResult& r) {
  Packer p;
  auto put = [&p](const auto&... x) { (p.put(x), ...); };
  fields(put, r);
  p.put(static_cast<std::uint64_t>(r.timeline.size()));
  for (const auto& e : r.timeline) p.put(e.stage).put(e.lane).put(e.rank).put(e.name).put(e.start).put(e.end);
  p.put(static_cast<std::uint64_t>(r.ops.size()));
  for (const auto& o : r.ops) p.put(o.name).put(o.flops).put(o.bytes).put(o.time);
  return p.take();
}

StepResult unpack_step(const std::string& bytes) {
  Unpacker u(bytes);
  StepResult r;
  auto get = [&u](auto&... x) { (u.get(x), ...); };
  fields(get, r);
  r.timeline.resize(u.get<std::uint64_t>());
  for (auto& e : r.timeline) get(e.stage, e.lane, e.rank, e.name, e.start, e.end);
  r.ops.resize(u.get<std::uint64_t>());
  for (auto& o : r.ops) get(o.name, o.flops, o.bytes, o.time);
  return r;
}

}  // namespace wallsim::engine
