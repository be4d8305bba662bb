#include "core/hash.hpp"
#include "failures/monte_carlo.hpp"

#include "engine/distribute.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

#include "core/error.hpp"
#include "core/limits.hpp"

namespace wallsim::failures {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A trial's random stream: the same numbers for (seed, trial) on any machine and rank.
class Stream {
 public:
  Stream(std::uint64_t seed, std::uint64_t trial) : rng_(splitmix64(seed ^ splitmix64(trial))) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double exponential() { return -std::log1p(-uniform()); }                   // mean 1

 private:
  std::mt19937_64 rng_;
};

/// The failures of one cause over wall time.
class Process {
 public:
  Process(const Cause& c, Stream& s) : c_(c), pool_(c.units) {
    const double k = c.weibull_shape;
    // Scale from the mean lifetime 1/rate: eta = 1 / (rate Gamma(1 + 1/k)).
    eta_ = c.rate.value() > 0.0 ? 1.0 / (c.rate.value() * std::tgamma(1.0 + 1.0 / k)) : kInf;
    draw_pool(0.0, s);
  }
  [[nodiscard]] double next() const {
    return replaced_.empty() ? pool_next_ : std::min(pool_next_, *std::min_element(replaced_.begin(), replaced_.end()));
  }
  /// The failure at `t` = next() happened: the unit is replaced by a new one.
  void fire(double t, Stream& s, bool replace = true) {
    if (exponential()) {
      draw_pool(t, s);
      return;
    }
    if (pool_next_ <= t) {
      pool_ -= 1.0;
      draw_pool(t, s);
    } else {
      auto it = std::min_element(replaced_.begin(), replaced_.end());
      *it = replaced_.back();
      replaced_.pop_back();
    }
    if (replace) replaced_.push_back(t + eta_ * std::pow(s.exponential(), 1.0 / c_.weibull_shape));
  }
  [[nodiscard]] const Cause& cause() const { return c_; }

 private:
  [[nodiscard]] bool exponential() const { return c_.weibull_shape == 1.0; }
  void draw_pool(double t, Stream& s) {
    if (pool_ <= 0.0 || eta_ == kInf) {
      pool_next_ = kInf;
    } else if (exponential()) {
      pool_next_ = t + s.exponential() * eta_ / pool_;
    } else {
      // m survivors of age t: P(none fails by t') = exp(-m ((t'/eta)^k - (t/eta)^k)).
      const double k = c_.weibull_shape;
      pool_next_ = eta_ * std::pow(std::pow(t / eta_, k) + s.exponential() / pool_, 1.0 / k);
    }
  }
  const Cause& c_;
  double pool_;
  double eta_ = kInf;
  double pool_next_ = kInf;
  std::vector<double> replaced_;
};

struct Accumulator {
  double sum = 0.0, sum2 = 0.0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
  }
  [[nodiscard]] Estimate get(int n) const {
    const double mean = sum / n;
    const double var = n > 1 ? std::max(0.0, (sum2 - n * mean * mean) / (n - 1)) : 0.0;
    return {mean, 1.96 * std::sqrt(var / n)};
  }
};

struct TrialResult {
  double wall = 0.0, checkpoint = 0.0, degraded = 0.0, waiting = 0.0;
  std::vector<double> count, lost;
};

/// Every field of a trial's result, in one order, for packing and unpacking across ranks.
template <class IO, class R>
void trial_fields(IO&& io, R& r) {
  io(r.wall, r.checkpoint, r.degraded, r.waiting, r.count, r.lost);
}

class Trial {
 public:
  Trial(const RunModel& m, double interval, std::uint64_t seed, std::uint64_t trial)
      : m_(m), tau_(interval), stream_(seed, trial) {
    procs_.reserve(m.causes.size());
    for (const auto& c : m.causes) procs_.emplace_back(c, stream_);
    r_.count.assign(m.causes.size(), 0.0);
    r_.lost.assign(m.causes.size(), 0.0);
  }

  TrialResult run() {
    const double W = m_.work.value();
    double wd = 0.0;  // durable work (restore point)
    double t_restore = 0.0;
    double t = 0.0;
    while (true) {
      // Running from the restore point; nothing being written yet.
      double w = wd;
      bool writing = false;
      double write_end = 0.0, pending_w = 0.0, pending_t = 0.0;
      bool fresh_write = false;
      // A checkpoint of the state (t, w) is taken: sync, it is durable; async, its write starts.
      auto checkpointed = [&] {
        if (m_.async) {
          writing = true;
          fresh_write = true;
          write_end = t + m_.write.value();
          pending_w = w;
          pending_t = t;
        } else {
          wd = w;
          t_restore = t;
        }
      };
      int failed = -1;
      while (failed < 0) {
        check_limit(t);
        links_out_.erase(std::remove_if(links_out_.begin(), links_out_.end(), [&](double e) { return e <= t; }),
                         links_out_.end());
        const double r = m_.degraded_rate[std::min(links_out_.size(), m_.degraded_rate.size() - 1)];
        // Whole cycles before anything changes (the next failure, the end, a cable repair)
        // are taken in one jump: a 54-day run has ~10^4 cycles but ~10^2 failures.
        const bool steady = !m_.async || fresh_write;  // async: a write has just started
        fresh_write = false;
        if (steady) {
          const double slow0 = m_.async ? std::min(m_.write.value(), tau_) : 0.0;
          const double cycle = tau_ + (m_.async ? m_.snapshot.value() : m_.write.value());
          const double gain = slow0 * r / m_.async_slowdown + (tau_ - slow0) * r;
          double until = next_failure().first;
          for (double e : links_out_) until = std::min(until, e);
          const double by_time = std::floor((until - t) / cycle) - 1.0;
          const double by_work = std::floor((W - w) / gain) - 1.0;
          const double k = std::min(by_time, by_work);
          if (k >= 1.0) {
            account_running(k * slow0, r / m_.async_slowdown);
            account_running(k * (tau_ - slow0), r);
            r_.checkpoint += k * (cycle - tau_);
            t += k * cycle;
            w += k * gain;
            if (m_.async) {  // the snapshot before the last is durable; the last is being written
              wd = w - gain;
              t_restore = t - cycle;
            }
            checkpointed();
          }
        }
        // Run for tau: first at r / slowdown while an async write drains, then at r.
        const double slow = writing ? std::min(write_end - t, tau_) : 0.0;
        for (int part = 0; part < 2 && failed < 0; ++part) {
          const double len = part == 0 ? slow : tau_ - slow;
          const double q = part == 0 ? r / m_.async_slowdown : r;
          if (len <= 0.0) continue;
          const auto [tf, i] = next_failure();
          const double finish = q > 0.0 ? t + (W - w) / q : kInf;
          if (tf < std::min(finish, t + len)) {
            account_running(tf - t, q);
            w += q * (tf - t);
            t = tf;
            failed = i;
            break;
          }
          if (finish <= t + len) {
            account_running(finish - t, q);
            r_.wall = finish;
            return r_;
          }
          account_running(len, q);
          w += q * len;
          t += len;
          if (part == 0 && writing) {  // the async write is durable now
            writing = false;
            wd = pending_w;
            t_restore = pending_t;
          }
        }
        if (failed >= 0) break;
        // Checkpoint: sync stalls for the write; async stalls for the snapshot, then drains.
        const double stall = m_.async ? m_.snapshot.value() : m_.write.value();
        const auto [tf, i] = next_failure();
        if (tf < t + stall) {
          t = tf;
          failed = i;
          break;
        }
        t += stall;
        r_.checkpoint += stall;
        checkpointed();
      }
      // The failure at t: what was done since the restore point is lost, then recovery.
      const double tf = t;
      const Cause& c = m_.causes[failed];
      fire(failed, tf);
      r_.count[failed] += 1.0;
      const bool planned = c.component == "planned";
      if (planned) {
        wd = w;  // a checkpoint is taken before the planned stop
        t += m_.write.value();
        r_.checkpoint += m_.write.value();
      } else {
        r_.lost[failed] += tf - t_restore;
      }
      t = recover(t, !planned);
      r_.lost[failed] += t - tf;
      t_restore = t;
    }
  }

 private:
  /// A run that takes 100 times its work (at least 100 s) will not finish: bad input.
  void check_limit(double t) const {
    if (t <= 100.0 * std::max(m_.work.value(), 1.0)) return;
    const bool waiting = r_.waiting > 0.5 * t;
    throw Error(waiting ? "run.failures.spare_nodes" : "run.failures",
                waiting ? "the run does not finish: with " + std::to_string(m_.spare_nodes) +
                              " spare nodes the job waits for repairs most of the time; give more spares"
                        : "the run does not finish: interruptions come faster than recovery and checkpoints "
                          "allow progress");
  }
  void account_running(double len, double q) {
    // Time beyond what the work would take at full speed: async slowdown, then degradation.
    const double r = m_.degraded_rate[std::min(links_out_.size(), m_.degraded_rate.size() - 1)];
    r_.checkpoint += len * (1.0 - q / r);
    r_.degraded += len * (q / r) * (1.0 - r);
  }
  std::pair<double, int> next_failure() const {
    double best = kInf;
    int who = -1;
    for (std::size_t i = 0; i < procs_.size(); ++i) {
      const double n = procs_[i].next();
      if (n < best) {
        best = n;
        who = static_cast<int>(i);
      }
    }
    return {best, who};
  }
  /// Cause i fails at t: its unit is replaced and what it takes down leaves until repaired.
  void fire(int i, double t) {
    procs_[i].fire(t, stream_);
    const Cause& c = m_.causes[i];
    if (c.component == "gpu" || c.component == "node" || c.component == "nic") {
      nodes_out_.push_back(t + c.repair.value());
    } else if (c.component == "link") {
      links_out_.push_back(t + c.repair.value());
    }
  }
  /// From the failure at `t`: detection (not for a planned stop), waiting for enough nodes,
  /// restart, checkpoint read. A failure during detection, restart or read is another
  /// interruption and starts the recovery again (Daly's model); one while waiting for a
  /// repair only takes its part out.
  double recover(double t, bool detect) {
    while (true) {
      check_limit(t);
      const double detected = t + (detect ? m_.detection.value() : 0.0);
      if (const auto [tf, i] = next_failure(); tf < detected) {
        interrupt_again(i, tf);
        t = tf;
        detect = true;
        continue;
      }
      t = detected;
      while (true) {  // until at most spare_nodes nodes are out
        nodes_out_.erase(std::remove_if(nodes_out_.begin(), nodes_out_.end(), [&](double e) { return e <= t; }),
                         nodes_out_.end());
        const std::size_t spares = static_cast<std::size_t>(m_.spare_nodes);
        if (nodes_out_.size() <= spares) break;
        const std::size_t excess = nodes_out_.size() - spares;
        std::vector<double> ends = nodes_out_;
        std::nth_element(ends.begin(), ends.begin() + static_cast<long>(excess - 1), ends.end());
        const double ready = ends[excess - 1];
        check_limit(t);
        const auto [tf, i] = next_failure();
        const double until = std::min(tf, ready);
        r_.waiting += until - t;
        t = until;
        if (tf < ready) fire(i, tf);
      }
      const double end = t + m_.restart.value() + m_.reload.value();
      const auto [tf, i] = next_failure();
      if (tf >= end) return end;
      interrupt_again(i, tf);
      t = tf;
      detect = true;
    }
  }
  void interrupt_again(int i, double t) {
    fire(i, t);
    r_.count[i] += 1.0;
  }

  const RunModel& m_;
  double tau_;
  Stream stream_;
  std::vector<Process> procs_;
  std::vector<double> nodes_out_, links_out_;  // repair times of what is out
  TrialResult r_;
};

}  // namespace

RunStats simulate_run(const RunModel& m, Seconds interval, int trials, std::uint64_t seed) {
  if (trials < 1 || trials > limits::kMaxTrials) {
    throw Error("--trials", std::to_string(trials) + " is out of range (1 to " + limits::with_commas(limits::kMaxTrials) + ")");
  }
  if (m.degraded_rate.empty() || *std::min_element(m.degraded_rate.begin(), m.degraded_rate.end()) <= 0.0) {
    throw std::logic_error("simulate_run: degraded_rate needs positive entries, the first for 0 failed links");
  }
  const double tau = std::max(interval.value(), m.async ? m.write.value() : 0.0);
  if (!(tau > 0.0)) throw Error("run.checkpoint.interval", "must be positive");
  const std::size_t nc = m.causes.size();
  Accumulator days, interruptions, goodput, ckpt, degraded, waiting;
  std::vector<Accumulator> count(nc), lost(nc);
  // Trials run in chunks spread over MPI ranks; each trial has its own stream, and the
  // results are summed in trial order, so any number of ranks gives the same figures.
  constexpr int kChunk = 64;
  const int chunks = (trials + kChunk - 1) / kChunk;
  const auto packed = engine::distribute(static_cast<std::size_t>(chunks), [&](std::size_t c) {
    engine::Packer out;
    for (int k = static_cast<int>(c) * kChunk; k < std::min(trials, static_cast<int>(c + 1) * kChunk); ++k) {
      const TrialResult r = Trial(m, tau, seed, static_cast<std::uint64_t>(k)).run();
      trial_fields([&out](const auto&... x) { (out.put(x), ...); }, r);
    }
    return out.take();
  });
  std::vector<TrialResult> results(static_cast<std::size_t>(trials));
  for (int c = 0; c < chunks; ++c) {
    engine::Unpacker in(packed[static_cast<std::size_t>(c)]);
    for (int k = c * kChunk; k < std::min(trials, (c + 1) * kChunk); ++k) {
      trial_fields([&in](auto&... x) { (in.get(x), ...); }, results[static_cast<std::size_t>(k)]);
    }
  }
  for (const TrialResult& r : results) {
    days.add(r.wall / 86400.0);
    double n = 0.0;
    for (std::size_t i = 0; i < nc; ++i) {
      n += r.count[i];
      count[i].add(r.count[i]);
      lost[i].add(r.lost[i] / 3600.0);
    }
    interruptions.add(n);
    goodput.add(m.work.value() / r.wall);
    ckpt.add(r.checkpoint / 3600.0);
    degraded.add(r.degraded / 3600.0);
    waiting.add(r.waiting / 3600.0);
  }
  RunStats s;
  s.trials = trials;
  s.interval = Seconds::of(tau);
  s.days = days.get(trials);
  s.interruptions = interruptions.get(trials);
  s.goodput = goodput.get(trials);
  s.checkpoint_hours = ckpt.get(trials);
  s.degraded_hours = degraded.get(trials);
  s.waiting_hours = waiting.get(trials);
  for (std::size_t i = 0; i < nc; ++i) {
    s.causes.push_back(m.causes[i].name);
    s.interruptions_by_cause.push_back(count[i].get(trials));
    s.lost_hours_by_cause.push_back(lost[i].get(trials));
  }
  return s;
}

std::vector<double> weibull_pool_failures(double n, double shape, Seconds eta, Seconds horizon,
                                          std::uint64_t seed) {
  Cause c;
  c.units = n;
  c.weibull_shape = shape;
  c.rate = Frequency::of(1.0 / (eta.value() * std::tgamma(1.0 + 1.0 / shape)));
  Stream s(seed, 0);
  Process p(c, s);
  std::vector<double> out;
  for (double t = p.next(); t < horizon.value() && out.size() < n; t = p.next()) {
    out.push_back(t);
    p.fire(t, s, false);
  }
  return out;
}

Seconds young_interval(Seconds delta, Seconds mtbi) {
  return Seconds::of(std::sqrt(2.0 * delta.value() * mtbi.value()));
}

Seconds daly_interval(Seconds delta, Seconds mtbi) {
  const double d = delta.value(), M = mtbi.value();
  if (d >= 2.0 * M) return Seconds::of(M);
  const double x = d / (2.0 * M);
  return Seconds::of(std::sqrt(2.0 * d * M) * (1.0 + std::sqrt(x) / 3.0 + x / 9.0) - d);
}

Seconds daly_expected_wall(Seconds tau, Seconds delta, Seconds restart, Seconds mtbi, int segments) {
  const double M = mtbi.value();
  const double per = M * std::exp(restart.value() / M);
  return Seconds::of(per * ((segments - 1) * std::expm1((tau.value() + delta.value()) / M) +
                            std::expm1(tau.value() / M)));
}

}  // namespace wallsim::failures
