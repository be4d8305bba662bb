#include "collectives/network_model.hpp"

#include <algorithm>
#include <bit>
#include <limits>
#include <stdexcept>
#include <optional>

#include "collectives/flow_model.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
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

/// The flows a transfer is cut into: flows_per_connection when it leaves its scale-up domain
/// (each on its own hashed route, flow_key), else one.
std::uint32_t flows_of(const topology::Topology& t, const Transfer& x, std::uint32_t flows_per_connection) {
  return t.leaves_domain(x.src, x.dst) ? std::max<std::uint32_t>(1, flows_per_connection) : 1;
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
      // A step of one pairing (each endpoint sends one transfer and receives one, of one size)
      // loads each port with its one transfer: no need to add them up.
      const bool paired = phases.size() == 1 && phases.front()->ring && phases.front()->transfers.empty();
      for (const Phase* ph : phases) {
        if (paired && !taper) break;
        ph->for_each([&](const Transfer& x) {
          if (x.src == x.dst) return;
          if (!paired) {
            const Ports q = ports_of(x);
            add_to(load[q.out], x.bytes.value());
            add_to(load[q.in], x.bytes.value());
          }
          if (!taper || !is_endpoint(x)) return;
          const std::size_t shared = shared_level(x);
          for (std::size_t j : tapered) {
            if (j >= shared) break;
            add_to(group_load[j][2 * std::size_t{t.cost_group(x.src, j)}], x.bytes.value());
            add_to(group_load[j][2 * std::size_t{t.cost_group(x.dst, j)} + 1], x.bytes.value());
          }
        });
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
      if (paired && !taper && t.num_cost_levels() > 0 && !t.has_failures()) {
        // Every transfer of the step has its level's cost and the step's one size: what the
        // step takes is its slowest level's (the loop below, without its per-transfer work).
        const Phase& ph = *phases.front();
        const auto& r = *ph.ring;
        const std::size_t n = r.size(), levels = t.num_cost_levels();
        std::size_t seen = 0;
        for (std::size_t i = 0; i < n && seen < levels; ++i) {
          const std::size_t j = ph.pairing == Phase::Pairing::kExchange ? i ^ ph.shift : (i + ph.shift) % n;
          if (r[i] == r[j]) continue;
          const std::size_t level = t.cost_level(r[i], r[j]);
          if (level == topology::Topology::kNoLevel) {  // not an endpoint: the loop below routes it
            seen = levels + 1;
            break;
          }
          if (level_bytes[level] < 0.0) ++seen;
          level_bytes[level] = ph.each.value();
        }
        if (seen <= levels) {
          for (std::size_t level = 0; level < levels; ++level) {
            if (level_bytes[level] < 0.0) continue;
            const auto cost = t.level_cost(level);
            slowest = std::max(slowest, p.overhead.value() + cost.latency.value() + level_bytes[level] / cost.bandwidth.value());
          }
          total += count * slowest;
          ++step_no;
          return;
        }
        std::fill(level_bytes.begin(), level_bytes.end(), -1.0);
      }
      for (const Phase* ph : phases) {
        ph->for_each([&](const Transfer& x) {
          ++index;
          if (x.src == x.dst) return;
          double bytes = x.bytes.value();
          if (!paired) {
            const Ports q = ports_of(x);
            bytes = std::max(load[q.out].bytes, load[q.in].bytes);
          }
          if (const std::size_t level = t.cost_level(x.src, x.dst); level != topology::Topology::kNoLevel) {
            level_bytes[level] = std::max(level_bytes[level], bytes);
            if (taper) level_taper[level] = std::max(level_taper[level], egress_time(x));
            return;
          }
          const auto cost = t.route_cost(x.src, x.dst, key_of(step_no, index), path);
          slowest = std::max(slowest, p.overhead.value() + cost.latency.value() +
                                          std::max(bytes / cost.bandwidth.value(), egress_time(x)));
        });
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

/// The direct all-to-all's steps by pair class (README, "Network models"). On a healthy fabric
/// with cost levels, a pair's bytes spread evenly over its level's equal-cost paths (as
/// adaptive routing or packet spraying spread them), so every up-link of a group carries the
/// same share of what leaves the group: the links that can bind are the endpoints' own and,
/// on a tapered fabric, each group's egress and ingress (Topology::level_egress) as wholes.
/// When every endpoint sends at most one transfer and receives at most one in a step (a
/// rotation's steps, and copies of one over disjoint groups), the endpoints' links carry one
/// transfer each: a transfer that crosses no tapered group moves at its level's bandwidth
/// once its latency has elapsed, and the transfers that cross one are grouped by level and
/// the groups they leave and enter (the pairs of one route cost between two groups are one
/// class, with a count), whose max-min rates over the groups' egresses are solved exactly,
/// event by event. A step costs O(transfers) with no routing, and O(classes) to solve.
class PairClasses {
 public:
  /// Whether steps can go by class on `t` at all (the same answer on every rank).
  static bool fabric_allows(const topology::Topology& t, const CostParams& p) {
    if (t.num_cost_levels() == 0 || t.has_failures()) return false;
    return std::all_of(p.reserved_Bps.begin(), p.reserved_Bps.end(), [](double r) { return r == 0.0; });
  }

  explicit PairClasses(const topology::Topology& t)
      : t_(t), levels_(t.num_cost_levels()), usable_(levels_, -1), port_bw_(levels_), slowest_(levels_),
        sent_(t.num_endpoints(), 0), received_(t.num_endpoints(), 0) {
    // Per tapered level j: its groups' count, and the offsets of their egress and ingress.
    std::size_t resources = 0;
    for (std::size_t j = 0; j + 1 < levels_; ++j) {
      if (t.level_egress(j).value() <= 0.0) continue;
      std::uint32_t groups = 0;
      for (NodeId e = 0; e < t.num_endpoints(); ++e) groups = std::max(groups, t.cost_group(e, j) + 1);
      tapered_.push_back({j, groups, resources, t.level_egress(j).value()});
      resources += 2 * std::size_t{groups};
    }
    capacity_.resize(resources);
    for (const auto& tl : tapered_) {
      std::fill_n(capacity_.begin() + static_cast<std::ptrdiff_t>(tl.offset), 2 * std::size_t{tl.groups}, tl.egress);
    }
    // Classes are counted in a dense table: per level, one cell per combination of the groups
    // a transfer of that level leaves and enters. Too large a table (more than 2^22 cells)
    // sends the steps that cross a taper to the per-flow path, on every rank alike.
    cells_.assign(levels_ + 1, 0);
    for (std::size_t level = 0; level < levels_; ++level) {
      double cells = 1.0;
      bool crosses = false;
      for (const auto& tl : tapered_) {
        if (tl.level >= level) break;
        crosses = true;
        cells *= static_cast<double>(tl.groups) * static_cast<double>(tl.groups);
      }
      if (!crosses) cells = 0.0;
      dense_ok_ = dense_ok_ && cells_[level] + cells <= static_cast<double>(kMaxCells);
      cells_[level + 1] = dense_ok_ ? cells_[level] + static_cast<std::size_t>(cells) : cells_[level];
    }
    if (dense_ok_ && !tapered_.empty()) count_.assign(cells_.back(), 0.0);
    weight_.resize(resources);
    left_.resize(resources);
  }

  /// The step's makespan, or nullopt when it cannot go by class: a phase is not a rotation
  /// (callers check that first, so as not to exchange on every step), an endpoint sends or receives twice, a level's route is narrower than its
  /// endpoints' links with no taper to account for it, or the transfers that cross a taper
  /// differ in size. With `exchange`, every rank calls together and gets the same answer.
  std::optional<double> makespan(const std::vector<const Phase*>& phases, Seconds overhead,
                                 const FlowExchange* exchange) {
    double ok = 1.0, lo = kInf, hi = 0.0;  // lo, hi: the crossing transfers' sizes
    for (const Phase* ph : phases) {
      if (!ph->rotation_only()) ok = 0.0;
    }
    if (++stamp_ == 0) {  // the stamps wrapped: start afresh
      std::fill(sent_.begin(), sent_.end(), 0);
      std::fill(received_.begin(), received_.end(), 0);
      stamp_ = 1;
    }
    std::fill(slowest_.begin(), slowest_.end(), -1.0);
    for (const Phase* ph : phases) {
      if (ok == 0.0) break;
      ph->for_each([&](const Transfer& x) {
        if (ok == 0.0 || x.src == x.dst) return;
        const std::size_t level = t_.cost_level(x.src, x.dst);
        if (level == topology::Topology::kNoLevel || sent_[x.src] == stamp_ || received_[x.dst] == stamp_) {
          ok = 0.0;
          return;
        }
        sent_[x.src] = received_[x.dst] = stamp_;
        if (usable_[level] < 0) usable_[level] = check_level(x.src, x.dst, level) ? 1 : 0;
        if (usable_[level] == 0) {
          ok = 0.0;
          return;
        }
        const double bytes = x.bytes.value();
        if (!crosses(level)) {
          slowest_[level] = std::max(slowest_[level], bytes);
          return;
        }
        if (!dense_ok_) {
          ok = 0.0;
          return;
        }
        lo = std::min(lo, bytes);
        hi = std::max(hi, bytes);
        const std::size_t cell = cell_of(x.src, x.dst, level);
        if (count_[cell] == 0.0) touched_.push_back(cell);
        count_[cell] += 1.0;
      });
    }
    if (exchange != nullptr) {
      ok = exchange->min(ok);
      lo = exchange->min(lo);
      hi = -exchange->min(-hi);
    }
    std::optional<double> span;
    if (ok == 1.0 && (hi == 0.0 || lo == hi)) {
      span = 0.0;
      for (std::size_t level = 0; level < levels_; ++level) {
        if (slowest_[level] < 0.0) continue;
        const auto cost = t_.level_cost(level);
        span = std::max(*span, overhead.value() + cost.latency.value() + slowest_[level] / port_bw_[level]);
      }
      if (hi > 0.0) {
        if (exchange != nullptr) {
          exchange->sum(count_);
          touched_.clear();
          for (std::size_t c = 0; c < count_.size(); ++c) {
            if (count_[c] > 0.0) touched_.push_back(c);
          }
        }
        span = std::max(*span, solve(hi, overhead));
      }
    }
    for (auto c : touched_) count_[c] = 0.0;
    touched_.clear();
    return span;
  }

 private:
  static constexpr double kInf = std::numeric_limits<double>::infinity();
  static constexpr std::size_t kMaxCells = std::size_t{1} << 22;
  struct Tapered {
    std::size_t level;
    std::uint32_t groups;
    std::size_t offset;  ///< egress of group g at offset + g, ingress at offset + groups + g
    double egress;       ///< bytes/s out of (into) one group
  };
  struct Class {
    double count, cap, start, left, rate = 0.0;
    std::size_t first, n;  ///< its resources: res_[first, first + n)
    bool frozen = false, done = false;
  };

  [[nodiscard]] bool crosses(std::size_t level) const { return !tapered_.empty() && tapered_.front().level < level; }

  [[nodiscard]] std::size_t cell_of(NodeId src, NodeId dst, std::size_t level) const {
    std::size_t cell = 0;
    for (const auto& tl : tapered_) {
      if (tl.level >= level) break;
      cell = (cell * tl.groups + t_.cost_group(src, tl.level)) * tl.groups + t_.cost_group(dst, tl.level);
    }
    return cells_[level] + cell;
  }

  /// A level can go by class when its route is as wide as the links at its two ends, or is
  /// narrower only where a taper (a group's egress) accounts for it; one routed pair stands
  /// for the level, as every route of a level has the same bottleneck.
  [[nodiscard]] bool check_level(NodeId src, NodeId dst, std::size_t level) {
    const topology::Path route = t_.route(src, dst, 0);
    if (route.empty()) return false;
    const double ends = std::min(t_.link(route.front()).bandwidth.value(), t_.link(route.back()).bandwidth.value());
    port_bw_[level] = ends;
    const double path = t_.level_cost(level).bandwidth.value();
    return path == ends || (path < ends && crosses(level));
  }

  /// The classes of the counted cells run from their start (overhead and latency) at their
  /// max-min rates until the last ends; its end.
  double solve(double bytes, Seconds overhead) {
    classes_.clear();
    res_.clear();
    std::sort(touched_.begin(), touched_.end());  // one order on every rank and library
    for (std::size_t cell : touched_) {
      const std::size_t level =
          static_cast<std::size_t>(std::upper_bound(cells_.begin(), cells_.end(), cell) - cells_.begin()) - 1;
      Class c{count_[cell], port_bw_[level], overhead.value() + t_.level_cost(level).latency.value(), bytes, 0.0,
              res_.size(), 0};
      // Decode the groups, innermost tapered level last.
      std::size_t rest = cell - cells_[level];
      std::size_t k = 0;
      while (k < tapered_.size() && tapered_[k].level < level) ++k;
      for (std::size_t i = k; i-- > 0;) {
        const auto& tl = tapered_[i];
        const std::size_t dst = rest % tl.groups;
        rest /= tl.groups;
        const std::size_t src = rest % tl.groups;
        rest /= tl.groups;
        res_.push_back(tl.offset + src);
        res_.push_back(tl.offset + tl.groups + dst);
      }
      c.n = res_.size() - c.first;
      classes_.push_back(c);
    }
    double now = 0.0, end = 0.0;
    std::size_t left = classes_.size();
    while (left > 0) {
      double next_start = kInf;
      for (const auto& c : classes_) {
        if (!c.done && c.start > now) next_start = std::min(next_start, c.start);
      }
      rates(now);
      double dt = next_start - now;
      for (const auto& c : classes_) {
        if (!c.done && c.start <= now && c.rate > 0.0) dt = std::min(dt, c.left / c.rate);
      }
      if (!(dt < kInf)) throw std::logic_error("pair classes: a class gets no bandwidth");
      const double at = now + dt;
      for (auto& c : classes_) {
        if (c.done || c.start > now) continue;
        c.left -= c.rate * dt;
        if (c.left <= kRelativePrecision * bytes) {
          c.done = true;
          --left;
          end = std::max(end, at);
        }
      }
      now = at;
    }
    return end;
  }

  /// Max-min rates of the classes running at `now` (progressive filling over the groups'
  /// egresses and ingresses, each class capped at its endpoints' links).
  void rates(double now) {
    std::vector<std::size_t>& used = used_;
    used.clear();
    for (auto& c : classes_) {
      c.frozen = c.done || c.start > now;
      c.rate = 0.0;
      if (c.frozen) continue;
      for (std::size_t i = c.first; i < c.first + c.n; ++i) {
        const std::size_t r = res_[i];
        if (weight_[r] == 0.0) used.push_back(r);
        weight_[r] += c.count;
      }
    }
    for (auto r : used) left_[r] = capacity_[r];
    double level = 0.0;
    while (true) {
      double step = kInf;
      for (auto r : used) {
        if (weight_[r] > 0.0) step = std::min(step, left_[r] / weight_[r]);
      }
      for (const auto& c : classes_) {
        if (!c.frozen) step = std::min(step, c.cap - level);
      }
      if (!(step < kInf)) break;
      level += step;
      for (auto r : used) left_[r] -= step * weight_[r];
      bool any = false;
      for (auto& c : classes_) {
        if (c.frozen) continue;
        bool stop = c.cap - level <= kRelativePrecision * c.cap;
        for (std::size_t i = c.first; !stop && i < c.first + c.n; ++i) {
          stop = left_[res_[i]] <= kRelativePrecision * capacity_[res_[i]];
        }
        if (!stop) continue;
        c.frozen = true;
        c.rate = level;
        any = true;
        for (std::size_t i = c.first; i < c.first + c.n; ++i) weight_[res_[i]] -= c.count;
      }
      if (!any) throw std::logic_error("pair classes: progressive filling froze nothing");
    }
    for (auto r : used) weight_[r] = 0.0;
  }

  const topology::Topology& t_;
  std::size_t levels_;
  std::vector<int> usable_;        ///< per level: 1 by class, 0 not, -1 not checked yet
  std::vector<double> port_bw_;    ///< per level: the narrower of its endpoints' links
  std::vector<double> slowest_;    ///< per level: the step's largest transfer crossing no taper (-1: none)
  std::vector<std::uint32_t> sent_, received_;
  std::uint32_t stamp_ = 0;
  std::vector<Tapered> tapered_;
  std::vector<double> capacity_;   ///< per resource (a group's egress or ingress), bytes/s
  std::vector<std::size_t> cells_; ///< per level: its first cell; cells_[levels_]: the count
  bool dense_ok_ = true;
  std::vector<double> count_;      ///< per cell: the step's transfers
  std::vector<std::size_t> touched_;
  std::vector<Class> classes_;
  std::vector<std::size_t> res_, used_;
  std::vector<double> weight_, left_;
};

class FlowLevelModel final : public NetworkModel {
  Seconds do_time(const topology::Topology& t, std::span<const Schedule> ss,
                  const CostParams& p) const override {
    double total = 0.0;
    std::size_t step_no = 0, steps = 1;
    for (const auto& s : ss) steps = std::max(steps, s.phases.size());
    std::vector<Flow> flows;
    std::optional<PairClasses> classes;
    if (PairClasses::fabric_allows(t, p)) classes.emplace(t);
    for_each_step(ss, [&](const std::vector<const Phase*>& phases, double count) {
      // Only a rotation's steps go by class; every rank holds copies of one collective, so all
      // see the same kind of step and the other steps cost no exchange here.
      const bool rotations = std::all_of(phases.begin(), phases.end(), [](const Phase* ph) {
        return ph->rotation_only();
      });
      if (classes && rotations) {
        // Every rank gets the same answer: the exchange's schedules are copies of one
        // collective over disjoint groups, so a rank's own check covers its endpoints.
        const std::optional<double> span = classes->makespan(phases, p.overhead, p.exchange);
        if (span) {
          const double makespan = p.exchange != nullptr ? -p.exchange->min(-*span) : *span;
          total += count * makespan;
          ++step_no;
          if (p.progress) p.progress(std::min(1.0, static_cast<double>(step_no) / static_cast<double>(steps)));
          return;
        }
      }
      flows.clear();
      // ECMP keys count the transfers of every schedule in the step, other ranks' first.
      std::size_t index = p.exchange != nullptr ? p.schedule_offset * phases.front()->size() : 0;
      for (const Phase* ph : phases) {
        ph->for_each([&](const Transfer& x) {
          ++index;
          if (x.src == x.dst) return;
          const std::uint32_t q = flows_of(t, x, p.flows_per_connection);
          for (std::uint32_t j = 0; j < q; ++j) {
            flows.push_back(Flow{t.route(x.src, x.dst, flow_key(key_of(step_no, index), j)), x.bytes / q, p.overhead, 1.0});
          }
        });
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

std::uint64_t flow_key(std::uint64_t key, std::uint32_t j) { return j == 0 ? key : splitmix64(key ^ j); }

void add_link_bytes(const topology::Topology& t, std::span<const Schedule> ss, std::vector<double>& bytes_by_link,
                    std::uint32_t flows_per_connection) {
  std::size_t step_no = 0;
  topology::Path path;
  for_each_step(ss, [&](const std::vector<const Phase*>& phases, double count) {
    std::size_t index = 0;
    for (const Phase* ph : phases) {
      ph->for_each([&](const Transfer& x) {
        ++index;
        if (x.src == x.dst) return;
        const std::uint32_t q = flows_of(t, x, flows_per_connection);
        for (std::uint32_t j = 0; j < q; ++j) {
          t.route_into(x.src, x.dst, flow_key(key_of(step_no, index), j), path);
          for (auto l : path) bytes_by_link[l] += count * x.bytes.value() / q;
        }
      });
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
