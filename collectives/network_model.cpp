#include "collectives/network_model.hpp"

#include <algorithm>
#include <bit>

#include "collectives/flow_model.hpp"
#include "core/error.hpp"
#include "topology/routing.hpp"

namespace wallsim::collectives {
namespace {

using topology::NodeId;

/// The lockstep expansion: at each step, the phase each schedule is in and how many times the
/// combination repeats before any schedule moves on.
template <class Fn>
void for_each_step(std::span<const Schedule> ss, Fn&& fn) {
  std::vector<std::size_t> phase(ss.size(), 0);
  std::vector<double> left(ss.size(), 0.0);
  for (std::size_t i = 0; i < ss.size(); ++i) left[i] = ss[i].phases.empty() ? 0.0 : ss[i].phases[0].repeat;
  std::vector<const Phase*> now;
  while (true) {
    now.clear();
    double count = 0.0;
    for (std::size_t i = 0; i < ss.size(); ++i) {
      if (phase[i] >= ss[i].phases.size()) continue;
      now.push_back(&ss[i].phases[phase[i]]);
      count = count == 0.0 ? left[i] : std::min(count, left[i]);
    }
    if (now.empty()) return;
    fn(now, count);
    for (std::size_t i = 0; i < ss.size(); ++i) {
      if (phase[i] >= ss[i].phases.size()) continue;
      left[i] -= count;
      if (left[i] <= 0.0) {
        ++phase[i];
        if (phase[i] < ss[i].phases.size()) left[i] = ss[i].phases[phase[i]].repeat;
      }
    }
  }
}

/// ECMP key of a transfer: its position in the step, so parallel messages spread.
std::uint64_t key_of(std::size_t phase_no, std::size_t index) {
  return (static_cast<std::uint64_t>(phase_no) << 32) | index;
}

class AnalyticModel final : public NetworkModel {
  Seconds do_time(const topology::Topology& t, std::span<const Schedule> ss,
                  const CostParams& p) const override {
    double total = 0.0;
    std::size_t step_no = 0;
    // Messages leaving (entering) one endpoint in a step share its injection (ejection) port:
    // its scale-up port for messages inside its scale-up domain, else its scale-out port.
    // Node v's ports are 4v + {0: up out, 1: out out, 2: up in, 3: out in}. The tuner costs
    // ~10^6 transfers on 16k GPUs: no division when domains are a power of two.
    const std::uint32_t dom = static_cast<std::uint32_t>(t.info().domain_size);
    const int shift = dom > 0 && std::has_single_bit(dom) ? std::countr_zero(dom) : -1;
    auto domain = [dom, shift](NodeId v) { return shift >= 0 ? v >> shift : v / dom; };
    struct Ports {
      std::uint32_t out, in;
    };
    auto ports_of = [&](const Transfer& x) {
      const std::uint32_t cross = dom > 0 && domain(x.src) != domain(x.dst) ? 1 : 0;
      return Ports{4 * x.src + cross, 4 * x.dst + 2 + cross};
    };
    struct Load {
      double bytes = 0.0;
      std::uint32_t step = 0;  ///< bytes are stale unless this is the current step's stamp
    };
    std::vector<Load> load(4 * t.num_nodes());
    // A tapered fabric (topology::Topology::level_egress): the messages leaving (entering) one
    // group of a level for endpoints outside it share the group's egress, as the messages of
    // an endpoint share its port: a rail leaf's GPUs share its spine uplinks. Per level with
    // an egress, group g's loads are at 2g (out) and 2g + 1 (in).
    const std::size_t groups = t.num_cost_levels() > 0 ? t.num_cost_levels() - 1 : 0;
    std::vector<std::size_t> tapered;  // levels with an egress
    for (std::size_t j = 0; j < groups; ++j) {
      if (t.level_egress(j).value() > 0.0) tapered.push_back(j);
    }
    std::vector<std::vector<Load>> group_load(groups);
    for (std::size_t j : tapered) group_load[j].resize(2 * t.num_endpoints());
    // The first level whose group src and dst share (groups when none), failures or not.
    auto shared_level = [&](const Transfer& x) {
      std::size_t j = 0;
      while (j < groups && t.cost_group(x.src, j) != t.cost_group(x.dst, j)) ++j;
      return j;
    };
    auto is_endpoint = [&](const Transfer& x) { return x.src < t.num_endpoints() && x.dst < t.num_endpoints(); };
    std::vector<double> level_bytes(t.num_cost_levels());  // per level: its most loaded port
    std::vector<double> level_taper(t.num_cost_levels());  // per level: its most loaded egress, in seconds
    topology::Path path;
    for_each_step(ss, [&](const std::vector<const Phase*>& phases, double count) {
      const auto stamp = static_cast<std::uint32_t>(step_no + 1);
      auto add_to = [stamp](Load& l, double bytes) {
        if (l.step != stamp) l = {0.0, stamp};
        l.bytes += bytes;
      };
      const bool taper = !tapered.empty();
      for (const Phase* ph : phases) {
        for (const auto& x : ph->transfers) {
          if (x.src == x.dst) continue;
          const Ports q = ports_of(x);
          add_to(load[q.out], x.bytes.value());
          add_to(load[q.in], x.bytes.value());
          if (!taper || !is_endpoint(x)) continue;
          const std::size_t shared = shared_level(x);
          for (std::size_t j : tapered) {
            if (j >= shared) break;
            add_to(group_load[j][2 * std::size_t{t.cost_group(x.src, j)}], x.bytes.value());
            add_to(group_load[j][2 * std::size_t{t.cost_group(x.dst, j)} + 1], x.bytes.value());
          }
        }
      }
      // Seconds the busiest egress a transfer crosses needs for this step's load (0 untapered).
      auto egress_time = [&](const Transfer& x) {
        double worst = 0.0;
        if (!taper || !is_endpoint(x)) return worst;
        const std::size_t shared = shared_level(x);
        for (std::size_t j : tapered) {
          if (j >= shared) break;
          const double bytes = std::max(group_load[j][2 * std::size_t{t.cost_group(x.src, j)}].bytes,
                                        group_load[j][2 * std::size_t{t.cost_group(x.dst, j)} + 1].bytes);
          worst = std::max(worst, bytes / t.level_egress(j).value());
        }
        return worst;
      };
      // On a healthy fabric with cost levels, every route of a level costs the same: only the
      // most loaded port per level matters (no routing, no division per transfer).
      std::fill(level_bytes.begin(), level_bytes.end(), -1.0);
      std::fill(level_taper.begin(), level_taper.end(), 0.0);
      std::size_t index = 0;
      double slowest = 0.0;
      for (const Phase* ph : phases) {
        for (const auto& x : ph->transfers) {
          ++index;
          if (x.src == x.dst) continue;
          const Ports q = ports_of(x);
          const double bytes = std::max(load[q.out].bytes, load[q.in].bytes);
          if (const std::size_t level = t.cost_level(x.src, x.dst); level != topology::Topology::kNoLevel) {
            level_bytes[level] = std::max(level_bytes[level], bytes);
            if (taper) level_taper[level] = std::max(level_taper[level], egress_time(x));
            continue;
          }
          const auto cost = t.route_cost(x.src, x.dst, key_of(step_no, index), path);
          slowest = std::max(slowest, p.overhead.value() + cost.latency.value() +
                                          std::max(bytes / cost.bandwidth.value(), egress_time(x)));
        }
      }
      for (std::size_t level = 0; level < level_bytes.size(); ++level) {
        if (level_bytes[level] < 0.0) continue;
        const auto cost = t.level_cost(level);
        slowest = std::max(slowest, p.overhead.value() + cost.latency.value() +
                                        std::max(level_bytes[level] / cost.bandwidth.value(), level_taper[level]));
      }
      total += count * slowest;
      ++step_no;
    });
    return Seconds::of(total);
  }
  [[nodiscard]] std::string do_name() const override { return "analytic"; }
};

class FlowLevelModel final : public NetworkModel {
  Seconds do_time(const topology::Topology& t, std::span<const Schedule> ss,
                  const CostParams& p) const override {
    double total = 0.0;
    std::size_t step_no = 0, steps = 1;
    for (const auto& s : ss) steps = std::max(steps, s.phases.size());
    std::vector<Flow> flows;
    for_each_step(ss, [&](const std::vector<const Phase*>& phases, double count) {
      flows.clear();
      // ECMP keys count the transfers of every schedule in the step, other ranks' first.
      std::size_t index = p.exchange != nullptr ? p.schedule_offset * phases.front()->transfers.size() : 0;
      for (const Phase* ph : phases) {
        for (const auto& x : ph->transfers) {
          ++index;
          if (x.src == x.dst) continue;
          flows.push_back(Flow{t.route(x.src, x.dst, key_of(step_no, index)), x.bytes, p.overhead, 1.0});
        }
      }
      double makespan = 0.0;
      for (const auto& f : simulate_flows(t, flows, nullptr, p.reserved_Bps, {}, p.exchange)) {
        makespan = std::max(makespan, f.value());
      }
      if (p.exchange != nullptr) makespan = -p.exchange->min(-makespan);
      total += count * makespan;
      ++step_no;
      if (p.progress) p.progress(std::min(1.0, static_cast<double>(step_no) / static_cast<double>(steps)));
    });
    return Seconds::of(total);
  }
  [[nodiscard]] std::string do_name() const override { return "flow"; }
};

}  // namespace

void add_link_bytes(const topology::Topology& t, std::span<const Schedule> ss, std::vector<double>& bytes_by_link) {
  std::size_t step_no = 0;
  topology::Path path;
  for_each_step(ss, [&](const std::vector<const Phase*>& phases, double count) {
    std::size_t index = 0;
    for (const Phase* ph : phases) {
      for (const auto& x : ph->transfers) {
        ++index;
        if (x.src == x.dst) continue;
        t.route_into(x.src, x.dst, key_of(step_no, index), path);
        for (auto l : path) bytes_by_link[l] += count * x.bytes.value();
      }
    }
    ++step_no;
  });
}

std::unique_ptr<NetworkModel> NetworkModel::build(const std::string& name, const std::string& path) {
  if (name == "analytic") return std::make_unique<AnalyticModel>();
  if (name == "flow") return std::make_unique<FlowLevelModel>();
  throw Error(path, "unknown network model '" + name + "'; one of analytic, flow");
}

Choice choose_schedule(const topology::Topology& t, Op op, const std::vector<NodeId>& group,
                       Bytes size, const CollectiveOptions& opt, const CostParams& p,
                       std::optional<Algo> forced, const NetworkModel& model) {
  // Every valid algorithm costed by the analytic model, as NCCL's tuner costs them. Only the
  // fastest schedule is kept: on 16k GPUs a schedule is megabytes, and the others are rebuilt
  // (deterministically) if the flow model times them.
  struct Candidate {
    Algo algo;
    double analytic;
  };
  std::vector<Candidate> candidates;
  std::optional<Schedule> fastest;
  double fastest_time = 0.0;
  std::string reasons;
  const AnalyticModel analytic;
  for (Algo a : forced ? std::vector<Algo>{*forced} : all_algos()) {
    std::string why;
    auto s = build_schedule(t, op, a, group, size, opt, &why);
    if (!s) {
      reasons += (reasons.empty() ? "" : "; ") + to_string(a) + ": " + why;
      continue;
    }
    const double time = analytic.time(t, *s, p).value();
    if (!fastest || time < fastest_time) {  // ties keep the first, as the stable sort below
      fastest = std::move(s);
      fastest_time = time;
    }
    candidates.push_back({a, time});
  }
  if (candidates.empty()) {
    throw Error("--algo", "no algorithm runs " + to_string(op) + " here (" + reasons + ")");
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.analytic < b.analytic; });
  if (model.name() == analytic.name()) {
    return Choice{std::move(*fastest), Seconds::of(candidates.front().analytic)};
  }
  // Contention only slows messages down, so the analytic time is a lower bound of the flow
  // time whenever a step's busiest endpoint link is its bottleneck (the common case; not when
  // an endpoint's messages fan out to slower, disjoint links). Time candidates fastest-first
  // and stop once the next one's bound cannot win.
  std::optional<Schedule> best;
  double best_time = 0.0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (i > 0 && candidates[i].analytic >= best_time) break;
    std::optional<Schedule> s = i == 0 ? std::move(fastest)
                                       : build_schedule(t, op, candidates[i].algo, group, size, opt, nullptr);
    const double time = model.time(t, *s, p).value();
    if (i == 0 || time < best_time) {
      best = std::move(s);
      best_time = time;
    }
  }
  return Choice{std::move(*best), Seconds::of(best_time)};
}

}  // namespace wallsim::collectives
