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
  // The plans that fit, enumerated on every rank (cheap); then their steps, spread over the
  // ranks (the expensive part, whose cost varies a lot from plan to plan).
  struct Candidate {
    ParallelSpec ps;
    int micro_batch;
    parallelism::Plan plan;
    std::size_t shape;
  };
  std::vector<Candidate> candidates;
  for (std::size_t shape = 0; shape < shapes.size(); ++shape) {
    const auto [tp, cp, pp] = shapes[shape];
    const long long dp = gpus / (static_cast<long long>(tp) * cp * pp);
    for (int ep : m.experts > 0 ? divisors(m.experts, m.experts) : std::vector<int>{1}) {
      // Expert TP: as the attention's, or none (experts whole, EP folded across TP ranks).
      for (int etp : ep > 1 && tp > 1 ? std::vector<int>{tp, 1} : std::vector<int>{tp}) {
        for (int vpp : pp > 1 ? std::vector<int>{1, 2, 4} : std::vector<int>{1}) {
          std::vector<std::string> schedules =
              vpp > 1 ? std::vector<std::string>{"interleaved"}
                      : (pp > 1 ? std::vector<std::string>{"1f1b", "gpipe", "zero-bubble"}
                                : std::vector<std::string>{"1f1b"});
          for (const auto& schedule : schedules) {
            for (int mbs : {1, 2, 4}) {
              for (int zero = 0; zero <= 3; ++zero) {
                for (const char* rc : recomputes) {
                  ++res.evaluated;
                  Scenario s = base;
                  ParallelSpec ps;
                  ps.tp = tp;
                  ps.pp = pp;
                  ps.dp = static_cast<int>(dp);
                  ps.cp = cp;
                  ps.ep = ep;
                  ps.etp = etp;
                  ps.sp = tp > 1;
                  ps.vpp = vpp;
                  ps.schedule = schedule;
                  ps.zero = zero;
                  ps.recompute = rc;
                  if (base.parallel) ps.order = base.parallel->order;
                  s.parallel = ps;
                  s.training->micro_batch = mbs;
                  parallelism::Plan plan;
                  Memory mem;
                  try {
                    plan = parallelism::make_plan(s);
                    mem = memory_per_gpu(s, plan);  // wafer clusters reject plans that are not data parallel
                  } catch (const Error&) {
                    continue;
                  }
                  ++res.valid;
                  if (!mem.fits()) {
                    ++res.dropped_memory;
                    continue;
                  }
                  candidates.push_back({ps, mbs, plan, shape});
                }
              }
            }
          }
        }
      }
    }
  }
  // A work item is a (tp, cp, pp) shape: its plans share most collectives (one rank's comm
  // cache serves them all). Items are handed out costliest first (tasks per step as the
  // estimate), results come back by shape in enumeration order.
  std::vector<std::vector<std::size_t>> by_shape(shapes.size());
  std::vector<double> cost(shapes.size(), 0.0);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& p = candidates[i].plan;
    by_shape[candidates[i].shape].push_back(i);
    cost[candidates[i].shape] += static_cast<double>(p.micro_batches) * p.vpp * p.pp + 100.0;
  }
  std::vector<std::size_t> order(shapes.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  const auto packed = distribute(
      shapes.size(),
      [&](std::size_t k) {
        Packer out;
        for (std::size_t i : by_shape[k]) {
          Scenario s = base;
          s.parallel = candidates[i].ps;
          s.training->micro_batch = candidates[i].micro_batch;
          out.put(pack(simulate_step(s, candidates[i].plan, t, opts)));
        }
        return out.take();
      },
      1, progress, order);
  std::vector<std::string> steps(candidates.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    Unpacker in(packed[k]);
    for (std::size_t i : by_shape[k]) steps[i] = in.get_string();
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) res.plans.emplace_back(candidates[i].plan, unpack_step(steps[i]));
  auto score = [&](const StepResult& r) { return by_energy ? r.energy_per_token_j : r.step_time.value(); };
  std::stable_sort(res.plans.begin(), res.plans.end(),
                   [&](const auto& a, const auto& b) { return score(a.second) < score(b.second); });
  return res;
}

}  // namespace wallsim::engine
