#include "engine/search.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "engine/distribute.hpp"

namespace wallsim::engine {
namespace {

std::vector<int> divisors(long long n, long long cap) {
  std::vector<int> d;
  for (long long i = 1; i <= std::min(n, cap); ++i) {
    if (n % i == 0) d.push_back(static_cast<int>(i));
  }
  return d;
}

std::vector<int> powers_of_two(long long cap) {
  std::vector<int> v;
  for (long long i = 1; i <= cap; i *= 2) v.push_back(static_cast<int>(i));
  return v;
}

}  // namespace

SearchResult search_plans(const Scenario& base, const topology::Topology& t, const StepOptions& o, bool by_energy,
                          const std::function<void(double)>& progress) {
  if (!base.model) throw Error("model", "missing: search needs a model");
  const ModelSpec& m = *base.model;
  const long long gpus = base.cluster.gpus();
  SearchResult res;
  StepOptions opts = o;
  if (!opts.cache) opts.cache = make_comm_cache();
  const long long domain = base.cluster.scale_up_domain;
  const char* recomputes[] = {"none", "selective", "full"};
  struct Shape {
    int tp, cp, pp;
  };
  std::vector<Shape> shapes;
  for (int tp : powers_of_two(std::min<long long>(domain, m.heads))) {
    for (int cp : powers_of_two(16)) {
      if (gpus % (static_cast<long long>(tp) * cp) != 0) continue;
      for (int pp : divisors(gpus / (static_cast<long long>(tp) * cp), m.layers)) shapes.push_back({tp, cp, pp});
    }
  }
  // A work item is a (tp, cp, pp) shape: its candidate plans are checked (rules, memory) and
  // the ones that fit simulated on one rank, whose comm cache serves them all (they share
  // most collectives). Items are handed out costliest first (pp^2 tp cp: tasks per step grow
  // with pp and the micro-batches with tp cp pp); results come back in enumeration order.
  struct Spec {
    ParallelSpec ps;
    int micro_batch;
  };
  auto specs_of = [&](const Shape& sh) {
    std::vector<Spec> out;
    const long long dp = gpus / (static_cast<long long>(sh.tp) * sh.cp * sh.pp);
    for (int ep : m.experts > 0 ? divisors(m.experts, m.experts) : std::vector<int>{1}) {
      // Expert TP: as the attention's, or none (experts whole, EP folded across TP ranks).
      for (int etp : ep > 1 && sh.tp > 1 ? std::vector<int>{sh.tp, 1} : std::vector<int>{sh.tp}) {
        for (int vpp : sh.pp > 1 ? std::vector<int>{1, 2, 4} : std::vector<int>{1}) {
          const std::vector<std::string> schedules =
              vpp > 1 ? std::vector<std::string>{"interleaved"}
                      : (sh.pp > 1 ? std::vector<std::string>{"1f1b", "gpipe", "zero-bubble"}
                                   : std::vector<std::string>{"1f1b"});
          for (const auto& schedule : schedules) {
            for (int mbs : {1, 2, 4}) {
              for (int zero = 0; zero <= 3; ++zero) {
                for (const char* rc : recomputes) {
                  ParallelSpec ps;
                  ps.tp = sh.tp;
                  ps.pp = sh.pp;
                  ps.dp = static_cast<int>(dp);
                  ps.cp = sh.cp;
                  ps.ep = ep;
                  ps.etp = etp;
                  ps.sp = sh.tp > 1;
                  ps.vpp = vpp;
                  ps.schedule = schedule;
                  ps.zero = zero;
                  ps.recompute = rc;
                  if (base.parallel) {  // the framework's settings the scenario gives, where they apply
                    const ParallelSpec& b = *base.parallel;
                    ps.order = b.order;
                    ps.overlap_grad_reduce = b.overlap_grad_reduce;
                    ps.tp_comm_overlap = b.tp_comm_overlap && sh.tp > 1;
                    ps.grad_reduce_dtype = b.grad_reduce_dtype;
                    if (ps.recompute == "selective") ps.recompute_modules = b.recompute_modules;
                    if (ep > 1 && etp == 1) ps.moe_token_dispatcher = b.moe_token_dispatcher;
                    // FSDP's choices, on the plans that shard what they act on.
                    if (zero >= 2) {
                      ps.grad_reduce = b.grad_reduce;
                      ps.grad_reduce_set = b.grad_reduce_set;
                    }
                    if (zero == 3) {
                      ps.reshard_after_forward = b.reshard_after_forward;
                      ps.reshard_set = b.reshard_set;
                      ps.prefetch_layers = b.prefetch_layers;
                      ps.fsdp_float8_all_gather = b.fsdp_float8_all_gather;
                    }
                  }
                  out.push_back({ps, mbs});
                }
              }
            }
          }
        }
      }
    }
    return out;
  };
  auto scenario_of = [&](const Spec& sp) {
    Scenario s = base;
    s.parallel = sp.ps;
    s.training->micro_batch = sp.micro_batch;
    return s;
  };
  std::vector<double> cost(shapes.size());
  std::vector<std::size_t> order(shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    order[k] = k;
    cost[k] = static_cast<double>(shapes[k].pp) * shapes[k].pp * shapes[k].tp * shapes[k].cp;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  const auto packed = distribute(
      shapes.size(),
      [&](std::size_t k) {
        Packer out;
        std::uint64_t valid = 0, dropped = 0, refused = 0;
        std::string why;
        std::vector<std::pair<std::uint64_t, std::string>> fits;
        const auto specs = specs_of(shapes[k]);
        for (std::size_t i = 0; i < specs.size(); ++i) {
          const Scenario s = scenario_of(specs[i]);
          parallelism::Plan plan;
          Memory mem;
          try {
            plan = parallelism::make_plan(s);
            mem = memory_per_gpu(s, plan);  // wafer clusters reject plans that are not data parallel
          } catch (const Error&) {
            continue;
          }
          ++valid;
          if (mem.over()) {  // a borderline plan is kept, and marked in the output
            ++dropped;
            continue;
          }
          // A plan with a choice only the event engine runs (DeepEP's dispatch, FP8 dispatch,
          // DualPipe, ...) is simulated there, under the same network.
          if (plan.event_engine_only().empty()) {
            fits.emplace_back(i, pack(simulate_step(s, plan, t, opts)));
            continue;
          }
          try {
            fits.emplace_back(i, pack(simulate_step_events(s, plan, t, opts)));
          } catch (const Error& e) {
            if (refused++ == 0) why = e.what();
          }
        }
        out.put(static_cast<std::uint64_t>(specs.size())).put(valid).put(dropped).put(refused).put(why);
        out.put(static_cast<std::uint64_t>(fits.size()));
        for (const auto& [i, step] : fits) out.put(i).put(step);
        return out.take();
      },
      1, progress, order);
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    Unpacker in(packed[k]);
    res.evaluated += in.get<std::uint64_t>();
    res.valid += in.get<std::uint64_t>();
    res.dropped_memory += in.get<std::uint64_t>();
    const auto refused = in.get<std::uint64_t>();
    const std::string why = in.get_string();
    if (res.not_simulated == 0 && refused > 0) res.not_simulated_why = why;
    res.not_simulated += refused;
    const auto n = in.get<std::uint64_t>();
    if (n == 0) continue;
    const auto specs = specs_of(shapes[k]);
    for (std::uint64_t j = 0; j < n; ++j) {
      const auto i = in.get<std::uint64_t>();
      res.plans.emplace_back(parallelism::make_plan(scenario_of(specs[i])), unpack_step(in.get_string()));
    }
  }
  auto score = [&](const StepResult& r) { return by_energy ? r.energy_per_token_j : r.step_time.value(); };
  std::stable_sort(res.plans.begin(), res.plans.end(),
                   [&](const auto& a, const auto& b) { return score(a.second) < score(b.second); });
  return res;
}

}  // namespace wallsim::engine
