#include "collectives/flow_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <limits>
#include <queue>
#include <span>

#include "core/error.hpp"

namespace wallsim::collectives {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct FlowState {
  double remaining = 0.0;  // bytes left at time `last`
  double rate = 0.0;       // bytes/s per unit of multiplicity
  double previous = 0.0;   // rate before the current recomputation
  double last = 0.0;
  double weight = 1.0;
  double bytes = 0.0;      // the flow's size
  std::uint32_t version = 0;
  std::uint32_t mark = 0;  // epoch of the last component search that reached this flow
};

struct HeapEntry {
  double key;
  std::uint32_t id;
  std::uint32_t version;
  bool operator>(const HeapEntry& o) const { return key != o.key ? key > o.key : id > o.id; }
};
using MinHeap = std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>>;

class Solver {
 public:
  Solver(const topology::Topology& t, const std::vector<Flow>& flows, std::span<const double> reserved,
         const FlowExchange* exchange)
      : flows_(flows), state_(flows.size()), begin_(flows.size() + 1, 0), finish_(flows.size(), Seconds::of(kInf)),
        ex_(exchange) {
    if (!reserved.empty() && reserved.size() != t.num_links()) {
      throw std::logic_error("simulate_flows: reserved_Bps needs one entry per link");
    }
    // The links the flows cross, numbered locally (a rank of a partitioned simulation holds
    // only its flows' links): per-link state is sized by them, not by the fabric.
    std::size_t total = 0;
    for (std::size_t f = 0; f < flows.size(); ++f) {
      for (auto l : flows[f].path) {
        if (l >= t.num_links()) throw Error("flow " + std::to_string(f), "link " + std::to_string(l) + " does not exist");
      }
      if (flows[f].multiplicity != std::floor(flows[f].multiplicity) || flows[f].multiplicity < 1.0) {
        throw std::logic_error("simulate_flows: multiplicities are whole numbers");
      }
      total += flows[f].path.size();
    }
    // Local ids in order of first appearance, through a map by link id that lives only here.
    std::vector<std::uint32_t> local_of(t.num_links(), kNone);
    for (const auto& fl : flows) {
      for (auto l : fl.path) {
        if (local_of[l] != kNone) continue;
        local_of[l] = static_cast<std::uint32_t>(glink_.size());
        glink_.push_back(l);
      }
    }
    const std::size_t n = glink_.size();
    bw_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      bw_[i] = t.link(glink_[i]).bandwidth.value();
      if (!reserved.empty()) bw_[i] = std::max(0.0, bw_[i] - reserved[glink_[i]]);
    }
    load_.assign(n, 0.0);
    cap_.assign(n, 0.0);
    wsum_.assign(n, 0.0);
    acc_.assign(n, 0.0);
    link_ver_.assign(n, 0);
    link_mark_.assign(n, 0);
    touch_mark_.assign(n, 0);
    on_start_.assign(n + 1, 0);
    on_count_.assign(n, 0);
    // Paths in one array of local link ids, with each element's slot in its link's flow list;
    // a link's list has room for every flow that crosses it. Flows in activation order
    // (start + path latency; ties by index) in one array too.
    links_.reserve(total);
    agenda_.reserve(flows.size());
    for (std::size_t f = 0; f < flows.size(); ++f) {
      const Flow& fl = flows[f];
      for (auto l : fl.path) {
        const std::uint32_t i = local_of[l];
        links_.push_back(i);
        ++on_start_[i + 1];
      }
      begin_[f + 1] = static_cast<std::uint32_t>(links_.size());
      agenda_.push_back({fl.start.value() + t.path_latency(fl.path).value(), static_cast<std::uint32_t>(f)});
    }
    for (std::size_t i = 0; i < n; ++i) on_start_[i + 1] += on_start_[i];
    on_flow_.assign(total, 0);
    std::sort(agenda_.begin(), agenda_.end(),
              [](const Start& a, const Start& b) { return a.at != b.at ? a.at < b.at : a.id < b.id; });
    slot_.assign(links_.size(), 0);
    if (ex_ != nullptr) {
      std::vector<topology::LinkId> mine(glink_);
      std::sort(mine.begin(), mine.end());
      const auto shared = ex_->shared_links(mine);
      shared_sum_.assign(shared.size(), 0.0);
      for (std::size_t k = 0; k < shared.size(); ++k) {
        if (local_of[shared[k]] != kNone) shared_.push_back({local_of[shared[k]], static_cast<std::uint32_t>(k)});
      }
    }
  }
  [[nodiscard]] std::span<const std::uint32_t> path(std::uint32_t f) const {
    return {links_.data() + begin_[f], links_.data() + begin_[f + 1]};
  }
  [[nodiscard]] std::span<const std::uint32_t> on_link(std::uint32_t l) const {
    return {on_flow_.data() + on_start_[l], on_count_[l]};
  }

  std::vector<Seconds> run(FlowStats* stats, const std::function<void(double)>& progress) {
    const std::size_t n = agenda_.size();
    std::size_t next = 0, done = 0;
    std::vector<std::uint32_t> changed;
    while (true) {
      drop_stale();
      const double t_act = next < n ? agenda_[next].at : kInf;
      const double t_fin = finish_heap_.empty() ? kInf : finish_heap_.top().key;
      double now = std::min(t_act, t_fin);
      if (ex_ != nullptr) now = ex_->min(now);  // the global event time
      if (now == kInf) break;
      const double tol = kRelativePrecision * std::max(std::fabs(now), 1e-12);
      changed.clear();
      // Completions.
      while (true) {
        drop_stale();
        if (finish_heap_.empty() || finish_heap_.top().key > now + tol) break;
        const HeapEntry e = finish_heap_.top();
        finish_heap_.pop();
        finish_[e.id] = Seconds::of(e.key);
        deactivate(e.id, changed);
        ++done;
      }
      // Activations.
      while (next < n && agenda_[next].at <= now + tol) {
        const auto [at, f] = agenda_[next++];
        if (begin_[f] == begin_[f + 1] || flows_[f].bytes.value() <= 0.0) {
          finish_[f] = Seconds::of(at);
          ++done;
          continue;
        }
        activate(f, now, changed);
      }
      bool any = !changed.empty();
      if (ex_ != nullptr) any = ex_->min(any ? 0.0 : 1.0) == 0.0;  // a change on any rank
      if (any) {
        recompute(changed, now);
        ++stats_.events;
        if (progress && stats_.events % 1024 == 0) progress(static_cast<double>(done) / static_cast<double>(n));
      }
    }
    if (stats != nullptr) *stats = stats_;
    return std::move(finish_);
  }

 private:
  void drop_stale() {
    while (!finish_heap_.empty() && finish_heap_.top().version != state_[finish_heap_.top().id].version) {
      finish_heap_.pop();
    }
  }

  void activate(std::uint32_t f, double now, std::vector<std::uint32_t>& changed) {
    FlowState& s = state_[f];
    s.remaining = s.bytes = flows_[f].bytes.value();
    s.last = now;
    s.rate = 0.0;
    s.weight = flows_[f].multiplicity;
    for (std::uint32_t i = begin_[f]; i < begin_[f + 1]; ++i) {
      const std::uint32_t l = links_[i];
      slot_[i] = on_start_[l] + on_count_[l]++;
      on_flow_[slot_[i]] = f;
      load_[l] += s.weight;
      changed.push_back(l);
    }
  }

  void deactivate(std::uint32_t f, std::vector<std::uint32_t>& changed) {
    FlowState& s = state_[f];
    ++s.version;
    for (std::uint32_t i = begin_[f]; i < begin_[f + 1]; ++i) {
      const std::uint32_t l = links_[i];
      const std::uint32_t pos = slot_[i];
      const std::uint32_t last = on_start_[l] + --on_count_[l];
      const std::uint32_t moved = on_flow_[last];
      load_[l] = on_count_[l] == 0 ? 0.0 : load_[l] - s.weight;
      on_flow_[pos] = moved;
      if (moved != f) {
        // Fix the moved flow's slot for this link (a path may not repeat a link).
        for (std::uint32_t j = begin_[moved]; j < begin_[moved + 1]; ++j) {
          if (links_[j] == l) {
            slot_[j] = pos;
            break;
          }
        }
      }
      changed.push_back(l);
    }
  }

  /// Max-min fair rates (progressive filling) for every flow connected to `seeds`; in a
  /// partitioned simulation, for every active flow (a component may cross ranks). Either way
  /// a component's rates depend on its flows and links only, so both give the same numbers.
  void recompute(const std::vector<std::uint32_t>& seeds, double now) {
    ++epoch_;
    comp_links_.clear();
    comp_flows_.clear();
    auto add_link = [&](std::uint32_t l) {
      if (link_mark_[l] != epoch_) {
        link_mark_[l] = epoch_;
        comp_links_.push_back(l);
      }
    };
    if (ex_ != nullptr) {
      for (std::uint32_t l = 0; l < on_count_.size(); ++l) {
        if (on_count_[l] > 0) add_link(l);
      }
    } else {
      for (auto l : seeds) add_link(l);
    }
    for (std::size_t i = 0; i < comp_links_.size(); ++i) {
      for (std::uint32_t f : on_link(comp_links_[i])) {
        if (state_[f].mark == epoch_) continue;
        state_[f].mark = epoch_;
        comp_flows_.push_back(f);
        for (auto l : path(f)) add_link(l);
      }
    }
    stats_.links_visited += comp_links_.size();
    for (std::uint32_t f : comp_flows_) {
      FlowState& s = state_[f];
      s.previous = s.rate;
      s.rate = -1.0;  // unfixed
    }
    if (comp_flows_.size() == 1 && ex_ == nullptr) {
      // Alone on its links: the narrowest one sets the rate (min(bw) / w = min(bw / w)).
      const std::uint32_t f = comp_flows_.front();
      double r = kInf;
      for (auto l : path(f)) r = std::min(r, bw_[l]);
      state_[f].rate = r / state_[f].weight;
      ++stats_.rate_updates;
    } else {
      fill(comp_links_.size() <= kLinearFillLinks);
    }
    for (std::uint32_t f : comp_flows_) {
      FlowState& s = state_[f];
      // An unchanged rate keeps its projected finish: no new heap entry.
      if (s.previous > 0.0 && std::fabs(s.rate - s.previous) <= kRelativePrecision * s.previous) {
        s.rate = s.previous;
        continue;
      }
      // The rate changes: bring the flow to `now` at its old rate first.
      s.remaining = std::max(0.0, s.remaining - s.previous * (now - s.last));
      s.last = now;
      ++s.version;
      if (std::isinf(s.bytes)) continue;  // background: takes its share, never finishes
      const double done_in = s.remaining <= kRelativePrecision * s.bytes ? 0.0
                             : s.rate > 0.0 ? s.remaining / s.rate
                                            : kInf;
      if (done_in == kInf) {
        throw Error("flow " + std::to_string(f), "gets no bandwidth (a link of zero capacity?)");
      }
      finish_heap_.push({now + done_in, f, s.version});
    }
  }

  /// Sums over ranks, for the links other ranks' flows cross too, of `value` (by local link);
  /// only links of the current component take part. `fn(l, sum)` receives each.
  template <class Get, class Fn>
  void combine_shared(Get&& value, Fn&& fn) {
    std::fill(shared_sum_.begin(), shared_sum_.end(), 0.0);
    for (const auto& [l, k] : shared_) {
      if (link_mark_[l] == epoch_) shared_sum_[k] = value(l);
    }
    ex_->sum(shared_sum_);
    for (const auto& [l, k] : shared_) {
      if (link_mark_[l] == epoch_) fn(l, shared_sum_[k]);
    }
  }

  /// Progressive filling over the component, in rounds: the lowest fair level over the
  /// component's links (over every rank's, when partitioned) saturates every link at exactly
  /// that level at once, fixing their unfixed flows; each other link the fixed flows cross
  /// gives up level x (sum of their weights) of its capacity. The weight sums are whole
  /// numbers, exact in any order. Small components scan for the minimum; large ones keep the
  /// levels in a heap with lazy invalidation (the same rounds, the same numbers).
  static constexpr std::size_t kLinearFillLinks = 1024;
  void fill(bool linear) {
    linear_ = linear;
    levels_.clear();
    open_.clear();
    for (auto l : comp_links_) {
      cap_[l] = bw_[l];
      wsum_[l] = load_[l];
      ++link_ver_[l];
    }
    if (ex_ != nullptr) combine_shared([&](std::uint32_t l) { return load_[l]; }, [&](std::uint32_t l, double w) { wsum_[l] = w; });
    for (auto l : comp_links_) {
      if (wsum_[l] <= 0.0) continue;
      if (linear) {
        open_.push_back(l);
      } else {
        levels_.push_back({cap_[l] / wsum_[l], l, link_ver_[l]});
      }
    }
    if (!linear) std::make_heap(levels_.begin(), levels_.end(), std::greater<>());
    while (true) {
      // This rank's lowest level and the links at it.
      double level = kInf;
      tied_.clear();
      if (linear) {
        std::size_t keep = 0;
        for (std::size_t i = 0; i < open_.size(); ++i) {
          const auto l = open_[i];
          if (wsum_[l] <= 0.0) continue;
          open_[keep++] = l;
          const double x = cap_[l] / wsum_[l];
          if (x < level) {
            level = x;
            tied_.clear();
          }
          if (x == level) tied_.push_back(l);
        }
        open_.resize(keep);
      } else {
        while (!levels_.empty() && levels_.front().version != link_ver_[levels_.front().id]) pop_level();
        if (!levels_.empty()) level = levels_.front().key;
      }
      const double global = ex_ != nullptr ? ex_->min(level) : level;
      if (global == kInf) break;
      if (level != global) tied_.clear();
      if (!linear && level == global) {
        while (!levels_.empty() && (levels_.front().version != link_ver_[levels_.front().id] ||
                                    levels_.front().key == global)) {
          if (levels_.front().version == link_ver_[levels_.front().id]) tied_.push_back(levels_.front().id);
          pop_level();
        }
      }
      saturate(global);
    }
  }
  /// Fixes every unfixed flow on the tied links at `level` and takes their share from every
  /// other link they cross (across ranks when partitioned).
  void saturate(double level) {
    ++touch_epoch_;
    touched_.clear();
    auto touch = [&](std::uint32_t m) {
      if (touch_mark_[m] != touch_epoch_) {
        touch_mark_[m] = touch_epoch_;
        touched_.push_back(m);
      }
    };
    for (auto best : tied_) {
      for (std::uint32_t f : on_link(best)) {
        FlowState& s = state_[f];
        if (s.rate >= 0.0) continue;
        s.rate = level;
        ++stats_.rate_updates;
        for (auto m : path(f)) {
          acc_[m] += s.weight;
          touch(m);
        }
      }
    }
    for (auto best : tied_) wsum_[best] = 0.0;  // saturated: no unfixed flow left on it
    if (ex_ != nullptr) {
      combine_shared([&](std::uint32_t l) { return touch_mark_[l] == touch_epoch_ ? acc_[l] : 0.0; },
                     [&](std::uint32_t l, double w) {
                       if (w > 0.0) touch(l);
                       acc_[l] = w;
                     });
    }
    for (auto m : touched_) {
      const double w = acc_[m];
      acc_[m] = 0.0;
      if (wsum_[m] <= 0.0) continue;  // a saturated link
      ++link_ver_[m];
      cap_[m] -= level * w;
      wsum_[m] -= w;
      // Snap residues so that filling ends (one named relative precision).
      if (wsum_[m] <= kRelativePrecision) {
        wsum_[m] = 0.0;
        continue;
      }
      if (cap_[m] < kRelativePrecision * bw_[m]) cap_[m] = 0.0;
      if (!linear_) push_level(m);  // a linear fill scans its links each round
    }
  }
  void push_level(std::uint32_t l) {
    levels_.push_back({cap_[l] / wsum_[l], l, link_ver_[l]});
    std::push_heap(levels_.begin(), levels_.end(), std::greater<>());
  }
  void pop_level() {
    std::pop_heap(levels_.begin(), levels_.end(), std::greater<>());
    levels_.pop_back();
  }

  const std::vector<Flow>& flows_;
  std::vector<FlowState> state_;
  std::vector<std::uint32_t> begin_;          // flow f's path is links_[begin_[f], begin_[f+1])
  std::vector<std::uint32_t> links_;          // local link ids
  std::vector<std::uint32_t> slot_;           // position of each path element in on_flow_
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  std::vector<topology::LinkId> glink_;       // local link id -> link id
  std::vector<std::uint32_t> on_start_, on_count_, on_flow_;  // active flows of each link
  std::vector<std::uint32_t> link_mark_;
  struct Start {
    double at;
    std::uint32_t id;
  };
  std::vector<Start> agenda_;  // activations in time order
  std::vector<double> cap_, wsum_, acc_;
  std::vector<std::uint32_t> link_ver_;
  std::vector<double> bw_;
  std::vector<double> load_;  // sum of the weights of the active flows on each link
  std::vector<Seconds> finish_;
  std::vector<HeapEntry> levels_;  // storage of the filling heap, reused across recomputations
  std::vector<std::uint32_t> touched_;
  std::vector<std::uint32_t> open_;  // links with unfixed flows during a linear fill
  std::vector<std::uint32_t> tied_;  // links at the lowest level in a fill round
  std::vector<std::uint32_t> touch_mark_;
  std::uint32_t touch_epoch_ = 0;
  std::vector<std::uint32_t> comp_links_;
  std::vector<std::uint32_t> comp_flows_;
  std::uint32_t epoch_ = 0;
  MinHeap finish_heap_;
  FlowStats stats_;
  const FlowExchange* ex_;
  bool linear_ = false;
  struct Shared {
    std::uint32_t local, index;  // a local link other ranks' flows cross, its place in shared_sum_
  };
  std::vector<Shared> shared_;
  std::vector<double> shared_sum_;
};

}  // namespace

std::vector<Seconds> simulate_flows(const topology::Topology& t, const std::vector<Flow>& flows,
                                    FlowStats* stats, std::span<const double> reserved_Bps,
                                    const std::function<void(double)>& progress, const FlowExchange* exchange) {
  return Solver(t, flows, reserved_Bps, exchange).run(stats, progress);
}

}  // namespace wallsim::collectives
