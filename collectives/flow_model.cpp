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
  Solver(const topology::Topology& t, const std::vector<Flow>& flows, std::span<const double> reserved)
      : topo_(t), flows_(flows), state_(flows.size()), begin_(flows.size() + 1, 0),
        on_link_(t.num_links()), link_mark_(t.num_links(), 0),
        cap_(t.num_links(), 0.0), wsum_(t.num_links(), 0.0), link_ver_(t.num_links(), 0),
        bw_(t.num_links()), finish_(flows.size(), Seconds::of(kInf)), touch_mark_(t.num_links(), 0) {
    load_.assign(t.num_links(), 0.0);
    for (topology::LinkId l = 0; l < t.num_links(); ++l) {
      bw_[l] = t.link(l).bandwidth.value();
      if (!reserved.empty()) {
        if (reserved.size() != t.num_links()) throw std::logic_error("simulate_flows: reserved_Bps needs one entry per link");
        bw_[l] = std::max(0.0, bw_[l] - reserved[l]);
      }
    }
    // Paths in one array (cache-friendly), with each element's slot in its link's flow list;
    // flows in activation order (start + path latency; ties by index) in one array too.
    std::size_t total = 0;
    for (const auto& fl : flows) total += fl.path.size();
    links_.reserve(total);
    agenda_.reserve(flows.size());
    for (std::size_t f = 0; f < flows.size(); ++f) {
      const Flow& fl = flows[f];
      for (auto l : fl.path) {
        if (l >= t.num_links()) throw Error("flow " + std::to_string(f), "link " + std::to_string(l) + " does not exist");
      }
      links_.insert(links_.end(), fl.path.begin(), fl.path.end());
      begin_[f + 1] = static_cast<std::uint32_t>(links_.size());
      agenda_.push_back({fl.start.value() + t.path_latency(fl.path).value(), static_cast<std::uint32_t>(f)});
    }
    std::sort(agenda_.begin(), agenda_.end(),
              [](const Start& a, const Start& b) { return a.at != b.at ? a.at < b.at : a.id < b.id; });
    slot_.assign(links_.size(), 0);
  }
  [[nodiscard]] std::span<const topology::LinkId> path(std::uint32_t f) const {
    return {links_.data() + begin_[f], links_.data() + begin_[f + 1]};
  }

  std::vector<Seconds> run(FlowStats* stats, const std::function<void(double)>& progress) {
    const std::size_t n = agenda_.size();
    std::size_t next = 0, done = 0;
    std::vector<topology::LinkId> changed;
    while (next < n || !finish_heap_.empty()) {
      drop_stale();
      const double t_act = next < n ? agenda_[next].at : kInf;
      const double t_fin = finish_heap_.empty() ? kInf : finish_heap_.top().key;
      const double now = std::min(t_act, t_fin);
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
      if (!changed.empty()) {
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

  void activate(std::uint32_t f, double now, std::vector<topology::LinkId>& changed) {
    FlowState& s = state_[f];
    s.remaining = s.bytes = flows_[f].bytes.value();
    s.last = now;
    s.rate = 0.0;
    s.weight = flows_[f].multiplicity;
    const std::uint32_t b = begin_[f];
    for (std::uint32_t i = b; i < begin_[f + 1]; ++i) {
      auto& list = on_link_[links_[i]];
      slot_[i] = static_cast<std::uint32_t>(list.size());
      list.push_back(f);
      load_[links_[i]] += s.weight;
      changed.push_back(links_[i]);
    }
  }

  void deactivate(std::uint32_t f, std::vector<topology::LinkId>& changed) {
    FlowState& s = state_[f];
    ++s.version;
    for (std::uint32_t i = begin_[f]; i < begin_[f + 1]; ++i) {
      const topology::LinkId l = links_[i];
      auto& list = on_link_[l];
      const std::uint32_t pos = slot_[i];
      const std::uint32_t moved = list.back();
      load_[l] = list.size() == 1 ? 0.0 : load_[l] - s.weight;
      list[pos] = moved;
      list.pop_back();
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

  /// Max-min fair rates (progressive filling) for every flow connected to `seeds`.
  void recompute(const std::vector<topology::LinkId>& seeds, double now) {
    ++epoch_;
    comp_links_.clear();
    comp_flows_.clear();
    for (auto l : seeds) {
      if (link_mark_[l] != epoch_) {
        link_mark_[l] = epoch_;
        comp_links_.push_back(l);
      }
    }
    for (std::size_t i = 0; i < comp_links_.size(); ++i) {
      for (std::uint32_t f : on_link_[comp_links_[i]]) {
        if (state_[f].mark == epoch_) continue;
        state_[f].mark = epoch_;
        comp_flows_.push_back(f);
        for (auto l : path(f)) {
          if (link_mark_[l] != epoch_) {
            link_mark_[l] = epoch_;
            comp_links_.push_back(l);
          }
        }
      }
    }
    stats_.links_visited += comp_links_.size();
    for (std::uint32_t f : comp_flows_) {
      FlowState& s = state_[f];
      s.previous = s.rate;
      s.rate = -1.0;  // unfixed
    }
    if (comp_flows_.size() == 1) {
      // Alone on its links: the narrowest one sets the rate.
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

  /// Progressive filling over the component: repeatedly saturate the links with the lowest
  /// fair level and fix the rate of their unfixed flows. Small components scan for the
  /// minimum (all links tied at it are saturated in one round: fixing one leaves the others'
  /// level unchanged); large ones keep the levels in a heap with lazy invalidation.
  static constexpr std::size_t kLinearFillLinks = 1024;
  void fill(bool linear) {
    levels_.clear();
    if (linear) open_.clear();
    for (auto l : comp_links_) {
      cap_[l] = bw_[l];
      wsum_[l] = load_[l];
      ++link_ver_[l];
      if (load_[l] <= 0.0) continue;
      if (linear) {
        open_.push_back(l);
      } else {
        levels_.push_back({cap_[l] / wsum_[l], l, link_ver_[l]});
      }
    }
    if (!linear) std::make_heap(levels_.begin(), levels_.end(), std::greater<>());
    while (true) {
      if (linear) {
        // Scan the links still carrying unfixed flows, dropping resolved ones as we go.
        double level = kInf;
        std::size_t keep = 0;
        tied_.clear();
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
        if (tied_.empty()) break;
        for (auto l : tied_) {
          if (wsum_[l] > 0.0) saturate(l, level, false);
        }
      } else {
        while (!levels_.empty() && levels_.front().version != link_ver_[levels_.front().id]) pop_level();
        if (levels_.empty()) break;
        const auto best = levels_.front().id;
        const double level = levels_.front().key;
        pop_level();
        saturate(best, level, true);
      }
    }
  }
  /// Fixes every unfixed flow on `best` at `level` and updates the other links they cross.
  void saturate(topology::LinkId best, double level, bool heap) {
    wsum_[best] = 0.0;
    ++touch_epoch_;
    touched_.clear();
    for (std::uint32_t f : on_link_[best]) {
      FlowState& s = state_[f];
      if (s.rate >= 0.0) continue;
      s.rate = level;
      ++stats_.rate_updates;
      for (auto m : path(f)) {
        if (m == best) continue;
        cap_[m] -= level * s.weight;
        wsum_[m] -= s.weight;
        if (touch_mark_[m] != touch_epoch_) {
          touch_mark_[m] = touch_epoch_;
          touched_.push_back(m);
        }
      }
    }
    // Each link the fixed flows cross gets one new level, after all of them are fixed.
    for (auto m : touched_) {
      ++link_ver_[m];
      // Snap residues so that filling ends (one named relative precision).
      if (wsum_[m] <= kRelativePrecision) {
        wsum_[m] = 0.0;
        continue;
      }
      if (cap_[m] < kRelativePrecision * bw_[m]) cap_[m] = 0.0;
      if (heap) push_level(m);
    }
  }
  void push_level(topology::LinkId l) {
    levels_.push_back({cap_[l] / wsum_[l], l, link_ver_[l]});
    std::push_heap(levels_.begin(), levels_.end(), std::greater<>());
  }
  void pop_level() {
    std::pop_heap(levels_.begin(), levels_.end(), std::greater<>());
    levels_.pop_back();
  }

  const topology::Topology& topo_;
  const std::vector<Flow>& flows_;
  std::vector<FlowState> state_;
  std::vector<std::uint32_t> begin_;          // flow f's path is links_[begin_[f], begin_[f+1])
  std::vector<topology::LinkId> links_;
  std::vector<std::uint32_t> slot_;           // position of each path element in its link's list
  std::vector<std::vector<std::uint32_t>> on_link_;
  std::vector<std::uint32_t> link_mark_;
  struct Start {
    double at;
    std::uint32_t id;
  };
  std::vector<Start> agenda_;  // activations in time order
  std::vector<double> cap_, wsum_;
  std::vector<std::uint32_t> link_ver_;
  std::vector<double> bw_;
  std::vector<double> load_;  // sum of the weights of the active flows on each link
  std::vector<Seconds> finish_;
  std::vector<HeapEntry> levels_;  // storage of the filling heap, reused across recomputations
  std::vector<topology::LinkId> touched_;
  std::vector<topology::LinkId> open_;  // links with unfixed flows during a linear fill
  std::vector<topology::LinkId> tied_;  // links at the lowest level in a linear fill round
  std::vector<std::uint32_t> touch_mark_;
  std::uint32_t touch_epoch_ = 0;
  std::vector<topology::LinkId> comp_links_;
  std::vector<std::uint32_t> comp_flows_;
  std::uint32_t epoch_ = 0;
  MinHeap finish_heap_;
  FlowStats stats_;
};

}  // namespace

std::vector<Seconds> simulate_flows(const topology::Topology& t, const std::vector<Flow>& flows,
                                    FlowStats* stats, std::span<const double> reserved_Bps,
                                    const std::function<void(double)>& progress) {
  return Solver(t, flows, reserved_Bps).run(stats, progress);
}

}  // namespace wallsim::collectives
