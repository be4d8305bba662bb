#include "failures/reliability.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "core/error.hpp"
#include "core/limits.hpp"
#include "core/optimize.hpp"

namespace wallsim::failures {
namespace {

/// Scale-out cables between two switches (a failure is rerouted), in id order, one
/// direction each.
std::vector<topology::LinkId> fabric_cables(const topology::Topology& t) {
  std::vector<topology::LinkId> out;
  for (topology::LinkId l = 0; l < t.num_links(); ++l) {
    if (t.link(l).cls != topology::LinkClass::kScaleOut || t.reverse(l) < l) continue;
    if (t.node(t.link_source(l)).kind == topology::NodeKind::kSwitch &&
        t.node(t.link_target(l)).kind == topology::NodeKind::kSwitch) {
      out.push_back(l);
    }
  }
  return out;
}

constexpr int kEvaluations = 16;  // golden-section calls of the interval search

/// The Monte Carlo's time grows with the failure events it simulates: about the expected
/// interruptions of one trial (work x the summed rates: every interruption costs at least its
/// own event; a run that takes 100 times its work stops with an error) times the trials,
/// those of the interval search included. Bounding the events, not the tokens, is the right
/// limit: 10^16 tokens are few events on a reliable cluster and 10^12 many on a flaky one.
void check_run_events(const RunModel& m, const RunSpec& run, const ReliabilityOptions& o) {
  double rate = 0.0;
  for (const auto& c : m.causes) rate += c.rate.value() * c.units;
  const double per_trial = m.work.value() * rate;
  const double trials = o.trials + (run.checkpoint_interval ? 0.0 : kEvaluations * std::min(o.trials, o.search_trials));
  const double events = per_trial * trials;
  if (!std::isfinite(m.work.value()) || !(events <= limits::kMaxRunEvents)) {
    throw Error("run.tokens", format_number(run.tokens) + " tokens take " + format_number(m.work.value() / 86400.0) +
                                  " days of training here, about " + format_number(per_trial) +
                                  " interruptions per trial, " + format_number(events) + " over " +
                                  format_number(trials) + " trials; the whole-run simulation is limited to " +
                                  format_number(limits::kMaxRunEvents) + " (fewer tokens or trials)");
  }
}

}  // namespace

std::size_t uniform_index(std::mt19937_64& rng, std::size_t n) {
  if (n == 0) throw std::logic_error("uniform_index: an empty range has no index");
  static_assert(std::mt19937_64::min() == 0 && std::mt19937_64::max() == ~std::uint64_t{0});
  const auto range = static_cast<std::uint64_t>(n);
  const std::uint64_t reject_below = (0 - range) % range;  // 2^64 mod n
  while (true) {
    // The 128-bit product x * n as (high, low) from 32-bit halves (no compiler extension).
    const std::uint64_t x = rng();
    const std::uint64_t xl = x & 0xffffffffu, xh = x >> 32, nl = range & 0xffffffffu, nh = range >> 32;
    const std::uint64_t ll = xl * nl, lh = xl * nh, hl = xh * nl, hh = xh * nh;
    const std::uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    const std::uint64_t low = (mid << 32) | (ll & 0xffffffffu);
    const std::uint64_t high = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    if (low >= reject_below) return static_cast<std::size_t>(high);
  }
}

void check_trials(long long trials) {
  if (trials < 1 || trials > limits::kMaxTrials) {
    throw Error("--trials", std::to_string(trials) + " is out of range (1 to " + limits::with_commas(limits::kMaxTrials) +
                                ": each trial's result is kept until the means are taken)");
  }
}

std::vector<Cause> scale_causes(const FailureSpec& f, long long gpus, int gpus_per_node) {
  std::vector<Cause> out;
  for (const auto& c : f.causes) {
    Cause k;
    k.name = c.name;
    k.component = c.component;
    k.units = c.per == "gpu" ? static_cast<double>(gpus)
              : c.per == "node" ? std::ceil(static_cast<double>(gpus) / gpus_per_node)
                                : 1.0;
    k.rate = c.rate;
    k.repair = c.repair;
    k.weibull_shape = c.weibull_shape;
    out.push_back(k);
  }
  return out;
}

ReliabilityResult analyze_run(const Scenario& s, const parallelism::Plan& p, const topology::Topology& t,
                              const ReliabilityOptions& o) {
  if (!s.run) throw Error("run", "missing: a reliability study needs run: {tokens, failures: {rates: ...}}");
  if (!s.run->failures) throw Error("run.failures", "missing: give failure rates, e.g. failures: {rates: llama3-h100}");
  const RunSpec& run = *s.run;
  check_trials(o.trials);
  ReliabilityResult r;
  auto step_of = [&](const topology::Topology& fabric, const engine::StepOptions& so) {
    return o.events ? engine::simulate_step_events(s, p, fabric, so) : engine::simulate_step(s, p, fabric, so);
  };
  r.step = o.healthy != nullptr ? *o.healthy : step_of(t, engine::step_options(o.network, o.power_cap));
  RunModel& m = r.model;
  m.work = Seconds::of(run.tokens / r.step.tokens_per_s);
  m.causes = scale_causes(*run.failures, p.gpus(), s.cluster.gpus_per_node);
  check_run_events(m, run, o);
  m.detection = run.failures->detection;
  m.restart = run.failures->restart;
  m.spare_nodes = run.failures->spare_nodes;
  // Checkpoint traffic on the fabric.
  r.shards = checkpoint_shards(s, p);
  const auto writes = checkpoint_flows(t, r.shards, false);
  const auto write_finish = collectives::simulate_flows(t, writes);
  m.write = makespan(write_finish);
  m.reload = makespan(t, checkpoint_flows(t, r.shards, true));
  m.async = run.async_checkpoint;
  if (m.async) {
    m.snapshot = r.shards.per_writer / run.snapshot_bandwidth;
    engine::StepOptions bg = engine::step_options(o.network, o.power_cap);
    std::vector<double> load;
    if (o.events) {
      bg.background = writes;  // every write's flow beside the step's, from its start
    } else {
      load = average_load(t, writes, write_finish);
      bg.reserved_Bps = load;
    }
    m.async_slowdown = step_of(t, bg).step_time / r.step.step_time;
  }
  // Step time with 1..3 failed fabric cables, picked at random (seeded). A cable whose loss
  // cuts GPUs off (a leaf with one uplink) is skipped: rerouting cannot help there.
  const auto cables = fabric_cables(t);
  std::mt19937_64 pick(o.seed);
  topology::Topology damaged = t;
  for (int tries = 0; m.degraded_rate.size() <= 3 && !cables.empty() && tries < 20; ++tries) {
    topology::Topology next = damaged;
    next.fail_link(cables[uniform_index(pick, cables.size())]);
    try {
      const Seconds slow = step_of(next, engine::step_options(o.network, o.power_cap)).step_time;
      m.degraded_rate.push_back(r.step.step_time / slow);
      damaged = std::move(next);
    } catch (const Error&) {  // disconnected
    }
  }
  // Closed forms, for the overhead each checkpoint costs.
  double total_rate = 0.0;
  for (const auto& c : m.causes) total_rate += c.rate.value() * c.units;
  r.mtbi = Seconds::of(total_rate > 0.0 ? 1.0 / total_rate : 1e18);
  const Seconds delta = m.async ? m.snapshot + m.write * (1.0 - 1.0 / m.async_slowdown) : m.write;
  r.young = young_interval(delta, r.mtbi);
  r.daly = daly_interval(delta, r.mtbi);
  Seconds interval;
  if (run.checkpoint_interval) {
    interval = *run.checkpoint_interval;
  } else {
    // Golden-section search on log(interval) for the best mean goodput, with the same random
    // streams for every candidate so that their differences are not noise.
    r.interval_searched = true;
    const int n = std::min(o.trials, o.search_trials);
    // Checkpoints are taken between steps: no interval below one step (nor below the write).
    const double lo0 = std::max({r.step.step_time.value(), m.write.value(), r.daly.value() / 30.0});
    const double lo = std::log(lo0), hi = std::log(std::max(lo0 * 2.0, 30.0 * r.daly.value()));
    auto score = [&](double x) {
      const double g = simulate_run(m, Seconds::of(std::exp(x)), n, o.seed).goodput.mean;
      r.searched.emplace_back(Seconds::of(std::exp(x)), g);
      if (o.progress) {
        o.progress(static_cast<double>(r.searched.size()) * n / (kEvaluations * n + o.trials));
      }
      return g;
    };
    interval = Seconds::of(std::exp(golden_section_min([&](double x) { return -score(x); }, lo, hi, 0.0, kEvaluations)));
    std::sort(r.searched.begin(), r.searched.end(),
              [](const auto& x, const auto& y) { return x.first.value() < y.first.value(); });
  }
  r.stats = simulate_run(m, interval, o.trials, o.seed);
  if (o.progress) o.progress(1.0);
  if (o.blast_radius) r.blast = blast_radius(t, *o.network, Bytes::of(256.0 * 1024 * 1024));
  return r;
}

}  // namespace wallsim::failures
