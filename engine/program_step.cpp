// A StepResult from the event engine: the step program run once, then each rank's streams
// read back into compute, exposed communication, bubble and optimizer time, FLOPs and energy.
#include <algorithm>
#include <map>
#include <stdexcept>

#include "engine/simulate.hpp"
#include "core/error.hpp"
#include "engine/step.hpp"
#include "engine/wafer_step.hpp"
#include "hardware/gpu_model.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/step_program.hpp"

namespace wallsim::engine {

namespace {
/// Sorted, merged intervals.
std::vector<std::pair<double, double>> merged(std::vector<std::pair<double, double>> v) {
  std::sort(v.begin(), v.end());
  std::vector<std::pair<double, double>> out;
  for (const auto& x : v) {
    if (!(x.second > x.first)) continue;
    if (!out.empty() && x.first <= out.back().second) {
      out.back().second = std::max(out.back().second, x.second);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

/// The time in `waits` outside `busy`.
double exposed_time(std::vector<std::pair<double, double>> waits, std::vector<std::pair<double, double>> busy) {
  const auto w = merged(std::move(waits)), b = merged(std::move(busy));
  double total = 0.0;
  std::size_t j = 0;
  for (const auto& [lo, hi] : w) {
    double t = lo;
    while (j < b.size() && b[j].second <= t) ++j;
    for (std::size_t q = j; q < b.size() && b[q].first < hi; ++q) {
      if (b[q].first > t) total += b[q].first - t;
      t = std::max(t, b[q].second);
      if (t >= hi) break;
    }
    if (t < hi) total += hi - t;
  }
  return total;
}

StepResult events_step(const Scenario& sc, const parallelism::Plan& p, const topology::Topology& t,
                       const StepOptions& o, Watts reserve) {
  const ModelSpec& m = *sc.model;
  const hardware::GpuModel gpu(sc.cluster.gpu,
                               {.power_cap = o.power_cap, .reserve = reserve, .precision = hardware::gemm_precision(p.fp8(), p.fp8_blockwise)});
  const parallelism::Program prog = parallelism::step_program(m, p);
  SimulateOptions so;
  so.flow = o.network->name() == "flow";
  so.reserved_Bps = o.reserved_Bps;
  so.link_bytes = o.link_bytes;
  so.background = o.background;
  so.exchange = so.flow ? o.partition : nullptr;  // under MPI: the flows split over the ranks
  if (sc.cluster.scale_out) so.flows_per_connection = static_cast<std::uint32_t>(sc.cluster.scale_out->flows_per_connection);
  // NCCL's data-parallel kernels hold an SM a channel beside the compute (links.yaml's
  // nccl_channels); a GPU without an SM count has no such split.
  if (sc.cluster.gpu.sms > 0) so.dp_sms = [&sc, &prog, &t](std::uint32_t g) { return nccl_sms(sc.cluster, prog, t, g); };
  // One rank per class (classes.hpp): a slow GPU (cluster.slow_gpus) is a class of its own and
  // runs its kernels at its speed; its peers wait for it where the program synchronizes them.
  so.classes = true;
  for (const auto& rank : prog.ranks) so.speed.push_back(sc.cluster.speed_of(rank.gpu));
  so.compute_time = [&gpu, &so](const parallelism::ProgramOp& op, std::uint32_t rank) {
    return gpu.time(op.kernel) / so.speed[rank];
  };
  const ProgramResult res = simulate(prog, t, so);
  const RankClasses& cls = res.classes;

  StepResult r;
  const double step = res.makespan.value();
  r.step_time = res.makespan;
  r.memory = memory_per_gpu(sc, p);
  r.clock = gpu.clock();
  r.stragglers = stragglers(sc, p);
  r.rank_classes = cls.count();
  r.classes_exact = cls.exact;
  // Per class (its simulated rank, weighed by its ranks): the compute stream's kernels (the
  // optimizer apart) and its communication ops; the other streams' tail past the compute
  // stream's end is exposed communication too; the rest of the step is bubble.
  const EnergyPerBit link_up = sc.cluster.scale_up.energy;
  const EnergyPerBit link_out = sc.cluster.scale_out ? sc.cluster.scale_out->link.energy : EnergyPerBit{};
  double compute = 0, exposed = 0, bubble = 0, other = 0, energy = 0, hbm = 0, hw_flops = 0;
  std::vector<StageTimes> per_class(cls.count());
  for (std::size_t k = 0; k < cls.count(); ++k) {
    const auto& ops = prog.ops_of(cls.rep[k]);
    const double ranks = cls.size[k];
    double c = 0, opt = 0, bytes = 0, flops = 0, compute_end = 0, compute2_end = 0, other_end = 0;
    // Kernels hold the SMs (busy); waits are communication ops on the compute streams, and the
    // compute stream's idle time before an op that waited on another stream's collective (a
    // TP chunk, a ZeRO gather, the buckets before the optimizer; waiting for a pipeline receive
    // is bubble). Exposed communication is the waits while no kernel runs (an overlapped pair's
    // communication under the other's kernels is hidden).
    std::vector<std::pair<double, double>> busy, waits;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& op = ops[i];
      const OpSpan& span = res.ops[k][i];
      const double d = span.end.value() - span.start.value();
      if (op.stream == parallelism::StreamKind::kCompute) {
        if (const double gap = span.start.value() - compute_end; gap > 0.0 && !op.deps.empty()) {
          const auto last = *std::max_element(op.deps.begin(), op.deps.end(), [&](auto a, auto b) {
            return res.ops[k][a].end.value() < res.ops[k][b].end.value();
          });
          const auto& why = ops[last];
          if (why.stream != parallelism::StreamKind::kCompute && why.kind != parallelism::ProgramOp::Kind::kRecv) {
            waits.emplace_back(compute_end, span.start.value());
          }
        }
        compute_end = std::max(compute_end, span.end.value());
      } else if (op.stream == parallelism::StreamKind::kCompute2) {
        compute2_end = std::max(compute2_end, span.end.value());
      } else {
        other_end = std::max(other_end, span.end.value());
        continue;
      }
      if (op.kind == parallelism::ProgramOp::Kind::kCompute) {
        (op.optimizer ? opt : c) += d;
        bytes += op.count * op.kernel.bytes.value();
        if (op.kernel.kind != parallelism::KernelKind::kElementwise) flops += op.count * op.kernel.flops.value();
        busy.emplace_back(span.start.value(), span.end.value());
      } else {
        waits.emplace_back(span.start.value(), span.end.value());
      }
    }
    const double streams_end = std::max(compute_end, compute2_end);
    if (other_end > streams_end) waits.emplace_back(streams_end, other_end);
    const double comm = exposed_time(std::move(waits), std::move(busy));
    StageTimes& st = per_class[k];
    st.compute = Seconds::of(c);
    st.comm = Seconds::of(comm);
    st.other = Seconds::of(opt);
    st.bubble = Seconds::of(std::max(0.0, step - c - comm - opt));
    st.energy = gpu.energy({res.makespan, Seconds::of(c + opt), Bytes::of(bytes), res.scale_up_sent[k] / ranks,
                            res.scale_out_sent[k] / ranks},
                           link_up, link_out);
    compute += ranks * c;
    exposed += ranks * comm;
    other += ranks * opt;
    bubble += ranks * st.bubble.value();
    energy += ranks * st.energy.value();
    hbm += ranks * bytes;
    hw_flops += ranks * flops;
    r.scale_up_bytes += res.scale_up_sent[k];
    r.scale_out_bytes += res.scale_out_sent[k];
  }
  const double gpus = static_cast<double>(prog.ranks.size());
  r.compute = Seconds::of(compute / gpus);
  r.exposed_comm = Seconds::of(exposed / gpus);
  r.bubble = Seconds::of(bubble / gpus);
  r.other = Seconds::of(other / gpus);
  for (int s = 0; s < p.pp; ++s) {  // each stage as its first rank saw it
    parallelism::Coords c;
    c.pp = s;
    const auto& st = per_class[cls.of[static_cast<std::size_t>(parallelism::rank_of(p, c))]];
    r.stages.push_back(st);
    r.stage_busy.push_back(st.compute);
  }
  const double tokens = static_cast<double>(p.global_batch * p.seq_len);
  const double model_flops = 3.0 * parallelism::model_forward_flops_per_sequence(m, p.seq_len).value() *
                             static_cast<double>(p.global_batch);
  r.tokens_per_s = tokens / step;
  r.model_flops_per_gpu = FlopRate::of(model_flops / gpus / step);
  r.hardware_flops_per_gpu = FlopRate::of(hw_flops / gpus / step);
  r.mfu = r.model_flops_per_gpu.value() / gpu.peak().value();
  r.hfu = r.hardware_flops_per_gpu.value() / gpu.peak().value();
  r.hbm_bytes = Bytes::of(hbm);
  r.link_bytes = res.link_bytes;
  if (o.timeline) {
    // Each rank class as its simulated rank runs it (the stage's first rank for the class that
    // holds it): every op by its stream (lane 0 its kernels, 1 the communication on the compute
    // and side streams, 2 the data-parallel and parameter-gather streams, 3 the pipeline sends
    // and receives), named as the program names it; and each kernel of the step once (its
    // first run on rank 0), for the roofline.
    std::map<std::string, bool> kernels;
    // At most kShownClasses classes (a trace of every class of a large step would hold millions
    // of events): those of the stages' first ranks, then those of slow GPUs, then the others
    // in rank order.
    std::vector<bool> shown(cls.count(), false);
    std::size_t count = 0;
    auto show = [&](std::uint32_t k, bool always) {
      if (shown[k] || (!always && count >= kShownClasses)) return;
      shown[k] = true;
      ++count;
    };
    std::vector<std::uint32_t> first_rank(static_cast<std::size_t>(p.pp));  // by stage
    for (int s = 0; s < p.pp; ++s) {
      parallelism::Coords c;
      c.pp = s;
      first_rank[static_cast<std::size_t>(s)] = static_cast<std::uint32_t>(parallelism::rank_of(p, c));
      show(cls.of[first_rank[static_cast<std::size_t>(s)]], true);
    }
    for (std::uint32_t r = 0; r < so.speed.size(); ++r) {
      if (so.speed[r] < 1.0) show(cls.of[r], false);
    }
    for (std::uint32_t k = 0; k < cls.count(); ++k) show(k, false);
    for (std::uint32_t k = 0; k < cls.count(); ++k) {
      if (!shown[k]) continue;
      const int s = parallelism::coords_of(p, static_cast<int>(cls.rep[k])).pp;
      const std::uint32_t first = first_rank[static_cast<std::size_t>(s)];
      const int rk = static_cast<int>(cls.of[first] == k ? first : cls.rep[k]);
      const auto& ops = prog.ops_of(cls.rep[k]);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        const auto& op = ops[i];
        const OpSpan& span = res.ops[k][i];
        if (!(span.end.value() > span.start.value())) continue;
        const bool kernel = op.kind == parallelism::ProgramOp::Kind::kCompute;
        int lane = 1;  // communication on the compute streams
        if (kernel) {
          lane = 0;
        } else if (op.stream == parallelism::StreamKind::kDataParallel || op.stream == parallelism::StreamKind::kParamGather) {
          lane = 2;
        } else if (op.stream == parallelism::StreamKind::kPipelineSend || op.stream == parallelism::StreamKind::kPipelineRecv) {
          lane = 3;
        }
        r.timeline.push_back({s, lane, op.name.empty() ? (kernel ? op.kernel.name : "communication") : op.name, span.start, span.end, rk});
        if (kernel && k == cls.of[0] && kernels.emplace(op.kernel.name, true).second) {
          r.ops.push_back({op.kernel.name, op.kernel.flops, op.kernel.bytes, (span.end - span.start) / op.count});
        }
      }
    }
  }
  r.step_energy = Joules::of(energy);
  r.energy_per_token_j = energy / tokens;
  r.cluster_avg_power = Watts::of(energy / step);
  r.gpu_avg_power = Watts::of(energy / step / gpus);
  return r;
}
}  // namespace

std::uint32_t nccl_sms(const ClusterSpec& c, const parallelism::Program& prog, const topology::Topology& t, std::uint32_t g) {
  const auto& m = prog.groups.at(g);
  if (m.empty()) return 0;
  const topology::NodeId first = prog.ranks.at(m.front()).gpu;
  const bool inside = std::none_of(m.begin(), m.end(), [&](std::uint32_t r) { return t.leaves_domain(first, prog.ranks.at(r).gpu); });
  if (inside) return static_cast<std::uint32_t>(c.scale_up.nccl_channels);
  if (!c.scale_out || c.gpus_per_node <= 0) return 0;
  // GPUs are numbered node by node (ClusterSpec::speed_of reads them so too).
  const auto node = [&](std::uint32_t r) { return prog.ranks.at(r).gpu / static_cast<topology::NodeId>(c.gpus_per_node); };
  const auto in_node = std::count_if(m.begin(), m.end(), [&](std::uint32_t r) { return node(r) == node(m.front()); });
  return static_cast<std::uint32_t>(c.nccl_sms_across(in_node));
}

StepResult simulate_step_events(const Scenario& sc, const parallelism::Plan& p, const topology::Topology& t,
                                const StepOptions& o) {
  if (is_wafer(sc.cluster)) return simulate_step(sc, p, t, o);  // a wafer's step is its own model (wafer_step.hpp)
  if (o.network == nullptr) throw std::logic_error("simulate_step_events: no network model");
  return within_cap(sc, p, o, [&](const StepOptions& q, Watts reserve) { return events_step(sc, p, t, q, reserve); });
}

}  // namespace wallsim::engine
