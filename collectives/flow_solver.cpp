#include "collectives/flow_solver.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"

namespace wallsim::collectives {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::uint32_t kNone = ~std::uint32_t{0};

struct PathHash {
  std::size_t operator()(const topology::Path& p) const noexcept {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the link ids
    for (auto l : p) h = (h ^ l) * 1099511628211ULL;
    return static_cast<std::size_t>(h);
  }
};

enum class Phase : std::uint8_t { waiting, moving, done, cancelled, released };

struct FlowRec {
  topology::Path path;  // until the flow moves; its class holds the path after that
  std::vector<std::uint32_t> times;  // empty, or times the flow crosses each of `path`'s links
  double bytes = 0.0;
  double remaining = 0.0;  // bytes left at `last`
  double rate = 0.0;       // bytes/s per unit of weight, as last applied
  double last = 0.0;
  double weight = 1.0;
  double at = 0.0;         // start + path latency
  double finish = kInf;
  std::uint32_t cls = kNone;
  std::uint32_t member = 0;  // position in its class's member list
  Phase phase = Phase::waiting;
};

/// Flows on one path: one unit of the max-min solve, weighted by their multiplicities.
struct ClassRec {
  topology::Path key;                  // the map key (join() says its two forms)
  std::vector<std::uint32_t> links;    // local link ids
  std::vector<std::uint32_t> slots;    // position in each link's class list
  std::vector<double> mult;            // times the path names each link (whole numbers)
  std::vector<std::uint32_t> members;  // flow ids
  double weight = 0.0;
  double rate = 0.0;       // the level of the last filling
  double fill_rate = 0.0;  // the level of the current filling, once fixed
  std::uint32_t flag = 0, fixed = 0, pending = 0, changed = 0;  // epochs
  bool alive = false;
  bool fresh = true;  // not yet solved
};

struct LinkRec {
  topology::LinkId global = 0;
  double raw = 0.0;       // bandwidth
  double reserved = 0.0;  // taken by traffic outside the solver
  double bw = 0.0;        // what the flows share
  double load = 0.0;      // weight of the classes on it
  double level = kInf;    // level at which the last filling saturated it (inf: never)
  double cap = 0.0, wsum = 0.0, acc = 0.0, new_level = kInf;  // filling state
  std::uint32_t dirty = 0, touch = 0, changed = 0;
  std::vector<std::uint32_t> classes;
  std::vector<double> mults;  // by position in `classes`: times that class's path names this link
  std::vector<std::uint32_t> at;  // by position in `classes`: this link's index in that class's lists
};

template <class T>
void heap_push(std::vector<T>& h, T e) {
  h.push_back(e);
  std::push_heap(h.begin(), h.end(), std::greater<>());
}
template <class T>
void heap_pop(std::vector<T>& h) {
  std::pop_heap(h.begin(), h.end(), std::greater<>());
  h.pop_back();
}

/// A binary heap of ids keyed by a double (ties by id), one entry per id at most, whose entries
/// move when their key changes: projected finishes (lazily invalidated entries would pile up
/// under long flows whose rate changes many times) and the refill's levels.
class IndexedHeap {
 public:
  struct Entry {
    double key;
    std::uint32_t id;
  };
  [[nodiscard]] bool empty() const { return h_.empty(); }
  [[nodiscard]] const Entry& top() const { return h_.front(); }
  /// Inserts flow `id` at `key`, or moves it there.
  void set(std::uint32_t id, double key) {
    if (id >= pos_.size()) pos_.resize(std::max<std::size_t>(id + 1, 2 * pos_.size()), kNone);
    std::size_t i = pos_[id];
    if (i == kNone) {
      i = h_.size();
      h_.push_back({key, id});
    } else {
      h_[i].key = key;
    }
    up(down(i));
  }
  void erase(std::uint32_t id) {
    if (id >= pos_.size() || pos_[id] == kNone) return;
    const std::size_t i = pos_[id];
    pos_[id] = kNone;
    const Entry last = h_.back();
    h_.pop_back();
    if (i == h_.size()) return;
    h_[i] = last;
    up(down(i));
  }
  /// Moves every id at the lowest key into `out` (appended, in the heap's order: the refill's
  /// numbers do not depend on the order of a round's tied links). They sit at the top of the heap, each under another of them; many at
  /// once (a flow's many links at one level) are taken out together and the rest re-heaped.
  void take_min(std::vector<std::uint32_t>& out) {
    const double key = h_.front().key;
    const std::size_t from = out.size();
    stack_.assign(1, 0);
    while (!stack_.empty()) {
      const std::size_t i = stack_.back();
      stack_.pop_back();
      out.push_back(h_[i].id);
      for (std::size_t c = 2 * i + 1; c <= 2 * i + 2 && c < h_.size(); ++c) {
        if (h_[c].key == key) stack_.push_back(c);
      }
    }
    const std::size_t k = out.size() - from;
    if (k < 8 || k * 4 < h_.size()) {
      for (std::size_t j = from; j < out.size(); ++j) erase(out[j]);
      return;
    }
    for (std::size_t j = from; j < out.size(); ++j) pos_[out[j]] = kNone;
    std::size_t w = 0;
    for (std::size_t i = 0; i < h_.size(); ++i) {
      if (pos_[h_[i].id] != kNone) h_[w++] = h_[i];
    }
    h_.resize(w);
    for (std::size_t i = 0; i < w; ++i) pos_[h_[i].id] = static_cast<std::uint32_t>(i);
    for (std::size_t i = w / 2; i-- > 0;) down(i);
  }

 private:
  static bool before(const Entry& a, const Entry& b) { return a.key != b.key ? a.key < b.key : a.id < b.id; }
  std::size_t down(std::size_t i) {
    const Entry e = h_[i];
    while (true) {
      std::size_t c = 2 * i + 1;
      if (c >= h_.size()) break;
      if (c + 1 < h_.size() && before(h_[c + 1], h_[c])) ++c;
      if (!before(h_[c], e)) break;
      h_[i] = h_[c];
      pos_[h_[i].id] = static_cast<std::uint32_t>(i);
      i = c;
    }
    h_[i] = e;
    pos_[e.id] = static_cast<std::uint32_t>(i);
    return i;
  }
  void up(std::size_t i) {
    const Entry e = h_[i];
    while (i > 0) {
      const std::size_t p = (i - 1) / 2;
      if (!before(e, h_[p])) break;
      h_[i] = h_[p];
      pos_[h_[i].id] = static_cast<std::uint32_t>(i);
      i = p;
    }
    h_[i] = e;
    pos_[e.id] = static_cast<std::uint32_t>(i);
  }
  std::vector<Entry> h_;
  std::vector<std::uint32_t> pos_;  // by flow id: place in h_, kNone when absent
  std::vector<std::size_t> stack_;
};


}  // namespace

class FlowSolver::Impl {
 public:
  Impl(const topology::Topology& t, std::span<const double> reserved, const FlowExchange* ex)
      : t_(t), reserved0_(reserved), ex_(ex) {
    if (!reserved.empty() && reserved.size() != t.num_links()) {
      throw std::logic_error("FlowSolver: reserved_Bps needs one entry per link");
    }
  }

  Id add(const Flow& f) {
    const auto id = free_flows_.empty() ? static_cast<Id>(flows_.size()) : free_flows_.back();
    for (auto l : f.path) {
      if (l >= t_.num_links()) throw Error("flow " + std::to_string(id), "link " + std::to_string(l) + " does not exist");
    }
    if (f.multiplicity != std::floor(f.multiplicity) || f.multiplicity < 1.0) {
      throw std::logic_error("FlowSolver: multiplicities are whole numbers");
    }
    if (f.start.value() < now_) throw std::logic_error("FlowSolver: a flow cannot start before now()");
    if (!f.times.empty()) {
      if (f.times.size() != f.path.size() || !f.latency) {
        throw std::logic_error("FlowSolver: counts need one per link and a latency");
      }
      for (auto k : f.times) {
        if (k == 0) throw std::logic_error("FlowSolver: a link's count is at least 1");
      }
    }
    FlowRec r;
    r.path = f.path;
    r.times = f.times;
    r.bytes = f.bytes.value();
    r.weight = f.multiplicity;
    r.at = f.start.value() + (f.latency ? f.latency->value() : t_.path_latency(f.path).value());
    const double at = r.at;
    if (free_flows_.empty()) {
      flows_.push_back(std::move(r));
    } else {
      free_flows_.pop_back();
      flows_[id] = std::move(r);
    }
    heap_push(agenda_, Start{at, id});
    ++unfinished_;
    return id;
  }

  void release(Id id) {
    if (flows_.at(id).phase != Phase::done) throw std::logic_error("FlowSolver: only a finished flow is released");
    flows_[id].phase = Phase::released;
    free_flows_.push_back(id);
  }

  void cancel(Id id) {
    FlowRec& f = flows_.at(id);
    if (f.phase == Phase::moving) {
      leave(id);
      finishes_.erase(id);
    }
    if (f.phase == Phase::waiting || f.phase == Phase::moving) {
      f.phase = Phase::cancelled;
      --unfinished_;
      pending_change_ = true;
    }
  }

  void reserve(topology::LinkId l, Bandwidth taken) {
    if (l >= t_.num_links()) throw Error("link " + std::to_string(l), "does not exist");
    LinkRec& k = links_[local(l)];
    k.reserved = taken.value();
    k.bw = std::max(0.0, k.raw - k.reserved);
    mark_link(local(l));
    pending_change_ = true;
  }

  Seconds next_event() {
    double t = pending_change_ ? now_ : std::min(next_start(), next_finish());
    if (ex_ != nullptr) t = ex_->min(t);
    return Seconds::of(t);
  }

  std::span<const Id> advance_to(Seconds until) {
    finished_.clear();
    while (true) {
      const double t = next_event().value();
      if (t == kInf || t > until.value()) break;
      step(t);
    }
    if (std::isfinite(until.value())) now_ = std::max(now_, until.value());  // the clock moves on
    return finished_;
  }

  bool step_next() {
    finished_.clear();
    const double t = next_event().value();
    if (t == kInf) return false;
    step(t);
    return true;
  }
  [[nodiscard]] std::span<const Id> finished() const { return finished_; }

  [[nodiscard]] double now() const { return now_; }
  [[nodiscard]] const FlowRec& flow(Id id) const { return flows_.at(id); }
  [[nodiscard]] std::size_t unfinished() const { return unfinished_; }
  [[nodiscard]] const FlowStats& stats() const { return stats_; }

 private:
  struct Start {
    double at;
    Id id;
    bool operator>(const Start& o) const { return at != o.at ? at > o.at : id > o.id; }
  };

  double next_start() {
    while (!agenda_.empty() && flows_[agenda_.front().id].phase != Phase::waiting) heap_pop(agenda_);
    return agenda_.empty() ? kInf : agenda_.front().at;
  }
  [[nodiscard]] double next_finish() const { return finishes_.empty() ? kInf : finishes_.top().key; }

  /// One event: the flows finishing and starting at `now` (within the precision), then the
  /// new rates.
  void step(double now) {
    now_ = now;
    const double tol = kRelativePrecision * std::max(std::fabs(now), 1e-12);
    while (next_finish() <= now + tol) {
      const auto e = finishes_.top();
      finishes_.erase(e.id);
      FlowRec& f = flows_[e.id];
      f.finish = e.key;
      leave(e.id);
      f.phase = Phase::done;
      f.remaining = 0.0;
      --unfinished_;
      finished_.push_back(e.id);
    }
    while (next_start() <= now + tol) {
      const Start s = agenda_.front();
      heap_pop(agenda_);
      FlowRec& f = flows_[s.id];
      if (f.path.empty() || f.bytes <= 0.0) {
        f.finish = s.at;
        f.phase = Phase::done;
        --unfinished_;
        finished_.push_back(s.id);
        continue;
      }
      join(s.id, now);
    }
    bool any = pending_change_;
    if (ex_ != nullptr) any = ex_->min(any ? 0.0 : 1.0) == 0.0;  // a change on any rank
    pending_change_ = false;
    if (!any) return;
    fill();
    ++stats_.events;
  }

  std::uint32_t local(topology::LinkId l) {
    if (local_of_.empty()) local_of_.assign(t_.num_links(), kNone);
    if (local_of_[l] != kNone) return local_of_[l];
    local_of_[l] = static_cast<std::uint32_t>(links_.size());
    LinkRec k;
    k.global = l;
    k.raw = t_.link(l).bandwidth.value();
    k.reserved = reserved0_.empty() ? 0.0 : reserved0_[l];
    k.bw = std::max(0.0, k.raw - k.reserved);
    links_.push_back(std::move(k));
    new_links_ = true;
    return local_of_[l];
  }

  void mark_link(std::uint32_t l) {
    if (links_[l].changed == change_epoch_) return;
    links_[l].changed = change_epoch_;
    changed_links_.push_back(l);
  }
  void mark_class(std::uint32_t c) {
    if (classes_[c].changed == change_epoch_) return;
    classes_[c].changed = change_epoch_;
    changed_classes_.push_back(c);
  }

  /// Flow `id` starts moving at `now`: it joins the class of its path.
  void join(Id id, double now) {
    FlowRec& f = flows_[id];
    f.phase = Phase::moving;
    f.remaining = f.bytes;
    f.last = now;
    f.rate = 0.0;
    // The class key: the path as given; for a flow given with counts, a mark no link id
    // takes, then its links and their counts (so the two forms never collide).
    const bool counted = !f.times.empty();
    if (counted) {
      key_.assign(1, kNone);
      key_.insert(key_.end(), f.path.begin(), f.path.end());
      key_.insert(key_.end(), f.times.begin(), f.times.end());
    }
    const topology::Path& key = counted ? key_ : f.path;
    auto [it, inserted] = class_of_.try_emplace(key, kNone);
    if (inserted) {
      std::uint32_t c;
      if (!free_classes_.empty()) {
        c = free_classes_.back();
        free_classes_.pop_back();
      } else {
        c = static_cast<std::uint32_t>(classes_.size());
        classes_.emplace_back();
      }
      it->second = c;
      ClassRec& k = classes_[c];
      k.key = key;
      k.links.clear();
      k.slots.clear();
      k.mult.clear();
      // Each link once, with how many times the flow crosses it.
      pairs_.clear();
      for (std::size_t j = 0; j < f.path.size(); ++j) pairs_.push_back({f.path[j], counted ? f.times[j] : 1u});
      std::sort(pairs_.begin(), pairs_.end());
      std::size_t n = 0;
      for (std::size_t a = 0; a < pairs_.size(); ++n) {
        std::size_t b = a;
        std::uint32_t count = 0;
        while (b < pairs_.size() && pairs_[b].first == pairs_[a].first) count += pairs_[b++].second;
        pairs_[n] = {pairs_[a].first, count};
        a = b;
      }
      pairs_.resize(n);
      for (const auto& [link, count] : pairs_) {
        const auto i = local(link);
        k.slots.push_back(static_cast<std::uint32_t>(links_[i].classes.size()));
        links_[i].at.push_back(static_cast<std::uint32_t>(k.links.size()));
        links_[i].classes.push_back(c);
        links_[i].mults.push_back(static_cast<double>(count));
        k.links.push_back(i);
        k.mult.push_back(static_cast<double>(count));
      }
      k.alive = true;
      k.fresh = true;
      k.weight = 0.0;
      k.rate = 0.0;
    }
    const std::uint32_t c = it->second;
    ClassRec& k = classes_[c];
    f.cls = c;
    f.member = static_cast<std::uint32_t>(k.members.size());
    k.members.push_back(id);
    k.weight += f.weight;
    for (std::size_t j = 0; j < k.links.size(); ++j) {
      links_[k.links[j]].load += f.weight * k.mult[j];
      mark_link(k.links[j]);
    }
    mark_class(c);
    topology::Path().swap(f.path);  // the class holds it now
    std::vector<std::uint32_t>().swap(f.times);
    pending_change_ = true;
  }

  /// Flow `id` stops moving: it leaves its class (and the class its links, once empty).
  void leave(Id id) {
    FlowRec& f = flows_[id];
    ClassRec& k = classes_[f.cls];
    const Id moved = k.members.back();
    k.members[f.member] = moved;
    flows_[moved].member = f.member;
    k.members.pop_back();
    k.weight -= f.weight;
    for (std::size_t j = 0; j < k.links.size(); ++j) {
      links_[k.links[j]].load -= f.weight * k.mult[j];  // whole numbers: exact, back to 0 with the last flow
      mark_link(k.links[j]);
    }
    if (k.members.empty()) {
      for (std::size_t j = 0; j < k.links.size(); ++j) {
        LinkRec& link = links_[k.links[j]];
        const std::uint32_t other = link.classes.back();
        const std::uint32_t s = k.slots[j];
        link.classes[s] = other;
        link.mults[s] = link.mults.back();
        link.at[s] = link.at.back();
        link.classes.pop_back();
        link.mults.pop_back();
        link.at.pop_back();
        if (other != f.cls) classes_[other].slots[link.at[s]] = s;
      }
      class_of_.erase(k.key);
      k.alive = false;
      free_classes_.push_back(f.cls);
    } else {
      mark_class(f.cls);
    }
    f.cls = kNone;
    pending_change_ = true;
  }

  // ---- filling -------------------------------------------------------------------------

  void push_link(std::uint32_t m) {
    const LinkRec& k = links_[m];
    link_q_.set(m, k.cap / k.wsum);
  }

  /// Link `m` joins the refill at the end of the round at level `y` (-inf: from the start):
  /// its state is what the full filling has at that point, rebuilt the way the full filling
  /// builds it (one subtraction per distinct level below, in ascending order).
  void make_dirty(std::uint32_t m, double y, bool push) {
    LinkRec& k = links_[m];
    k.dirty = epoch_;
    k.new_level = kInf;
    dirty_.push_back(m);
    k.cap = k.bw;
    double wsum = k.load;
    if (y > -kInf) {
      below_.clear();
      for (std::size_t q = 0; q < k.classes.size(); ++q) {
        const ClassRec& o = classes_[k.classes[q]];
        if (o.fixed == epoch_) {
          below_.push_back({o.fill_rate, o.weight * k.mults[q]});
        } else if (o.flag != epoch_ && o.rate <= y) {
          below_.push_back({o.rate, o.weight * k.mults[q]});
        }
      }
      std::sort(below_.begin(), below_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (std::size_t i = 0; i < below_.size();) {
        const double r = below_[i].first;
        double w = 0.0;
        for (; i < below_.size() && below_[i].first == r; ++i) w += below_[i].second;
        k.cap -= r * w;
        wsum -= w;
        if (wsum <= kRelativePrecision) {
          wsum = 0.0;
          break;
        }
        if (k.cap < kRelativePrecision * k.bw) k.cap = 0.0;
      }
    }
    k.wsum = wsum;
    for (auto c : k.classes) {
      ClassRec& o = classes_[c];
      if (o.fixed == epoch_ || o.flag == epoch_ || o.pending == epoch_ || o.rate <= y) continue;
      o.pending = epoch_;  // bottlenecked elsewhere, at its old level unless proved otherwise
      check_q_.set(c, o.rate);
    }
    if (push && k.wsum > 0.0) push_link(m);
  }

  void fix(std::uint32_t c, double y) {
    ClassRec& o = classes_[c];
    o.fixed = epoch_;
    o.fill_rate = y;
    check_q_.erase(c);
    fixed_.push_back(c);
    round_fixed_.push_back(c);
  }

  void flag(std::uint32_t c) {
    classes_[c].flag = epoch_;
    check_q_.erase(c);
    flagged_.push_back(c);
  }

  void touch(std::uint32_t m) {
    if (links_[m].touch == touch_epoch_) return;
    links_[m].touch = touch_epoch_;
    touched_.push_back(m);
  }

  /// The refill (see the header): progressive filling over the dirty links, in rounds of one
  /// level each.
  void fill() {
    ++epoch_;
    dirty_.clear();
    fixed_.clear();
    flagged_.clear();
    if (ex_ != nullptr) {
      for (std::uint32_t m = 0; m < links_.size(); ++m) {
        for (auto c : links_[m].classes) {
          if (classes_[c].flag != epoch_) flag(c);
        }
      }
      for (std::uint32_t m = 0; m < links_.size(); ++m) {
        if (links_[m].load > 0.0) make_dirty(m, -kInf, false);
      }
      refresh_shared();
      combine_shared([&](std::uint32_t l) { return links_[l].load; }, [&](std::uint32_t l, double w) { links_[l].wsum = w; });
      for (auto m : dirty_) {
        if (links_[m].wsum > 0.0) push_link(m);
      }
    } else {
      for (auto c : changed_classes_) {
        if (classes_[c].alive) flag(c);
      }
      for (auto c : flagged_) {
        for (auto m : classes_[c].links) {
          if (links_[m].dirty != epoch_) make_dirty(m, -kInf, true);
        }
      }
      for (auto m : changed_links_) {
        if (links_[m].dirty != epoch_) make_dirty(m, -kInf, true);
      }
    }
    ++change_epoch_;
    changed_classes_.clear();
    changed_links_.clear();

    while (true) {
      const double mine = std::min(link_q_.empty() ? kInf : link_q_.top().key,
                                   check_q_.empty() ? kInf : check_q_.top().key);
      const double y = ex_ != nullptr ? ex_->min(mine) : mine;
      if (y == kInf) break;
      tied_.clear();
      checks_.clear();
      if (mine == y && !link_q_.empty() && link_q_.top().key == y) link_q_.take_min(tied_);
      if (mine == y && !check_q_.empty() && check_q_.top().key == y) check_q_.take_min(checks_);
      round(y);
    }
    for (auto m : dirty_) {
      LinkRec& k = links_[m];
      k.level = k.new_level;
    }
    stats_.links_visited += dirty_.size();
    stats_.rate_updates += fixed_.size();
    for (auto c : fixed_) {
      ClassRec& o = classes_[c];
      const bool moved = o.fresh || o.flag == epoch_ || o.fill_rate != o.rate;
      o.rate = o.fill_rate;
      o.fresh = false;
      if (moved) apply_rate(o);
    }
  }

  /// One round at level `y`: the tied links saturate, fixing their classes at y; each checked
  /// class is held at its old level y by a link outside the refill, or will move above it; a
  /// class fixed at a level other than its old one spreads the refill to its links.
  void round(double y) {
    round_fixed_.clear();
    moved_.clear();
    for (auto m : tied_) {
      for (auto c : links_[m].classes) {
        const ClassRec& o = classes_[c];
        // Not fixed yet: neither in this refill nor, below y, by its old bottleneck.
        if (o.fixed != epoch_ && (o.flag == epoch_ || o.rate >= y)) fix(c, y);
      }
    }
    for (auto m : tied_) {
      links_[m].wsum = 0.0;
      links_[m].new_level = y;
    }
    for (auto c : checks_) {
      const ClassRec& o = classes_[c];
      if (o.fixed == epoch_ || o.flag == epoch_) continue;
      bool held = false;
      for (auto b : o.links) held = held || (links_[b].dirty != epoch_ && links_[b].level == y);
      if (held) {
        fix(c, y);
      } else {
        flag(c);  // its old bottleneck no longer holds it: it rises above y
        moved_.push_back(c);
      }
    }
    for (auto c : round_fixed_) {
      const ClassRec& o = classes_[c];
      if (o.flag != epoch_ && o.fill_rate != o.rate) {
        flag(c);
        moved_.push_back(c);
      }
    }
    // The fixed classes' share leaves every other dirty link they cross (one subtraction per
    // link per round, of a whole-number weight sum: exact in any order and over ranks).
    ++touch_epoch_;
    touched_.clear();
    for (auto c : round_fixed_) {
      const ClassRec& o = classes_[c];
      for (std::size_t j = 0; j < o.links.size(); ++j) {
        const auto m = o.links[j];
        if (links_[m].dirty != epoch_ || links_[m].wsum <= 0.0) continue;
        links_[m].acc += o.weight * o.mult[j];
        touch(m);
      }
    }
    if (ex_ != nullptr) {
      combine_shared([&](std::uint32_t l) { return links_[l].touch == touch_epoch_ ? links_[l].acc : 0.0; },
                     [&](std::uint32_t l, double w) {
                       if (w > 0.0) touch(l);
                       links_[l].acc = w;
                     });
    }
    for (auto m : touched_) {
      LinkRec& k = links_[m];
      const double w = k.acc;
      k.acc = 0.0;
      if (k.wsum <= 0.0) continue;  // saturated
      k.cap -= y * w;
      k.wsum -= w;
      if (k.wsum <= kRelativePrecision) {
        k.wsum = 0.0;
        link_q_.erase(m);  // every flow on it is fixed
        continue;
      }
      if (k.cap < kRelativePrecision * k.bw) k.cap = 0.0;
      push_link(m);
    }
    for (auto c : moved_) {
      for (auto m : classes_[c].links) {
        if (links_[m].dirty != epoch_) make_dirty(m, y, true);
      }
    }
  }

  /// A class's new rate reaches its flows: each is brought to now at its old rate and gets a
  /// new projected finish, unless the rate moved by less than the precision.
  void apply_rate(const ClassRec& o) {
    for (auto id : o.members) {
      FlowRec& f = flows_[id];
      const double prev = f.rate;
      if (prev > 0.0 && std::fabs(o.rate - prev) <= kRelativePrecision * prev) continue;
      f.remaining = std::max(0.0, f.remaining - prev * (now_ - f.last));
      f.last = now_;
      f.rate = o.rate;
      if (std::isinf(f.bytes)) continue;  // background: takes its share, never finishes
      const double done_in = f.remaining <= kRelativePrecision * f.bytes ? 0.0
                             : f.rate > 0.0                              ? f.remaining / f.rate
                                                                         : kInf;
      if (done_in < kInf) {
        finishes_.set(id, now_ + done_in);
      } else {
        finishes_.erase(id);  // stopped (a link wholly taken) until a rate comes back
      }
    }
  }

  // ---- ranks ---------------------------------------------------------------------------

  void refresh_shared() {
    const bool grew = ex_->min(new_links_ ? 0.0 : 1.0) == 0.0;
    new_links_ = false;
    if (!grew) return;
    std::vector<topology::LinkId> mine;
    mine.reserve(links_.size());
    for (const auto& k : links_) mine.push_back(k.global);
    std::sort(mine.begin(), mine.end());
    const auto shared = ex_->shared_links(mine);
    shared_.clear();
    shared_sum_.assign(shared.size(), 0.0);
    for (std::size_t i = 0; i < shared.size(); ++i) {
      const auto l = shared[i];
      if (!local_of_.empty() && local_of_[l] != kNone) shared_.push_back({local_of_[l], static_cast<std::uint32_t>(i)});
    }
  }

  /// Sums over ranks, for the dirty links other ranks' flows cross too, of `value` (by local
  /// link); `fn(l, sum)` receives each.
  template <class Get, class Fn>
  void combine_shared(Get&& value, Fn&& fn) {
    std::fill(shared_sum_.begin(), shared_sum_.end(), 0.0);
    for (const auto& [l, i] : shared_) {
      if (links_[l].dirty == epoch_) shared_sum_[i] = value(l);
    }
    ex_->sum(shared_sum_);
    for (const auto& [l, i] : shared_) {
      if (links_[l].dirty == epoch_) fn(l, shared_sum_[i]);
    }
  }

  const topology::Topology& t_;
  std::span<const double> reserved0_;
  const FlowExchange* ex_;
  double now_ = 0.0;
  std::size_t unfinished_ = 0;
  bool pending_change_ = false;
  bool new_links_ = false;
  std::vector<FlowRec> flows_;
  std::vector<Id> free_flows_;  // released ids, reused last first
  std::vector<ClassRec> classes_;
  std::vector<std::uint32_t> free_classes_;
  std::unordered_map<topology::Path, std::uint32_t, PathHash> class_of_;
  std::vector<LinkRec> links_;
  std::vector<std::uint32_t> local_of_;  // link id -> local link (kNone: no flow crossed it yet)
  std::vector<Start> agenda_;            // flows waiting for their latency, by time
  IndexedHeap finishes_;                  // projected finishes of the moving flows
  std::vector<Id> finished_;
  std::uint32_t change_epoch_ = 1;
  std::vector<std::uint32_t> changed_links_, changed_classes_;
  // filling
  std::uint32_t epoch_ = 0, touch_epoch_ = 0;
  IndexedHeap link_q_, check_q_;  // the refill's dirty links by level, checks by old level
  std::vector<std::uint32_t> dirty_, fixed_, flagged_, round_fixed_, moved_, tied_, checks_, touched_;
  std::vector<std::pair<double, double>> below_;
  std::vector<std::pair<topology::LinkId, std::uint32_t>> pairs_;  // join's scratch: (link, count)
  topology::Path key_;
  struct Shared {
    std::uint32_t local, index;
  };
  std::vector<Shared> shared_;
  std::vector<double> shared_sum_;
  FlowStats stats_;
};

FlowSolver::FlowSolver(const topology::Topology& t, std::span<const double> reserved_Bps, const FlowExchange* exchange)
    : impl_(std::make_unique<Impl>(t, reserved_Bps, exchange)) {}
FlowSolver::~FlowSolver() = default;
FlowSolver::FlowSolver(FlowSolver&&) noexcept = default;
FlowSolver& FlowSolver::operator=(FlowSolver&&) noexcept = default;

FlowSolver::Id FlowSolver::add(const Flow& f) { return impl_->add(f); }
void FlowSolver::cancel(Id id) { impl_->cancel(id); }
void FlowSolver::release(Id id) { impl_->release(id); }
void FlowSolver::reserve(topology::LinkId l, Bandwidth taken) { impl_->reserve(l, taken); }
Seconds FlowSolver::next_event() { return impl_->next_event(); }
std::span<const FlowSolver::Id> FlowSolver::advance_to(Seconds t) { return impl_->advance_to(t); }
bool FlowSolver::step() { return impl_->step_next(); }
std::span<const FlowSolver::Id> FlowSolver::finished() const { return impl_->finished(); }
Seconds FlowSolver::now() const { return Seconds::of(impl_->now()); }
Seconds FlowSolver::finish(Id id) const { return Seconds::of(impl_->flow(id).finish); }
Bytes FlowSolver::remaining(Id id) const {
  const auto& f = impl_->flow(id);
  if (f.phase == Phase::done) return Bytes::of(0.0);
  if (f.phase != Phase::moving) return Bytes::of(f.bytes);
  return Bytes::of(std::max(0.0, f.remaining - f.rate * (impl_->now() - f.last)));
}
std::size_t FlowSolver::unfinished() const { return impl_->unfinished(); }
const FlowStats& FlowSolver::stats() const { return impl_->stats(); }

}  // namespace wallsim::collectives
