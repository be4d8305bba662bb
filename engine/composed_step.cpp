// The composed step: each collective costed alone over its groups (CommCost, one entry per
// op, groups and size, shared by the plans of a search), then every pipeline stage's passes,
// pipeline sends, data-parallel buckets and optimizer scheduled as tasks with fixed durations
// on a compute and a data-parallel stream per stage (run_tasks). What search ranks plans with
// (`--network analytic`'s fast path) and `run --engine composed` gives; the event engine
// (program_step.cpp) is the step as a simulation.
#include "engine/composed_step.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <unordered_map>

#include "core/error.hpp"
#include "engine/distribute.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/pipeline.hpp"

namespace wallsim::engine {
namespace {

using parallelism::GroupKind;
using parallelism::Kernel;
using parallelism::KernelKind;
using parallelism::Pass;
using parallelism::Plan;
using parallelism::Recompute;
using collectives::Op;
using parallelism::stage_params;


// ---------------------------------------------------------------- communication costs

struct CommEntry {
  Seconds time;
  Bytes up, out;  ///< bytes one GPU sends, inside and outside its scale-up domain
  /// Bytes per link of every group's schedule (only when link bytes are asked for).
  std::shared_ptr<const std::vector<std::pair<topology::LinkId, double>>> links;
};

/// A set of groups (each a list of ranks) with its hash, the shared cache's key.
struct Groups {
  std::vector<std::vector<topology::NodeId>> groups;
  std::size_t hash;
};

/// What places ranks into groups: the plan's sizes and the order of its dimensions (the rest
/// of a plan does not move a rank). Plans of one layout share their groups.
using LayoutKey = std::array<int, 11>;
LayoutKey layout_key(const Plan& p) {
  LayoutKey k{p.tp, p.cp, p.dp, p.pp, p.ep, p.etp, p.dp_shard, 0, 0, 0, 0};
  for (std::size_t i = 0; i < p.order.size(); ++i) k[7 + i] = p.order[i].empty() ? 0 : p.order[i].front();
  return k;
}

}  // namespace

class CommCache {
 public:
  std::map<std::tuple<int, std::size_t, std::size_t, double>, CommEntry> entries;
  /// By layout, stage and kind: the groups, built once for every plan of that layout.
  std::map<std::tuple<LayoutKey, int, int>, Groups> groups;
  /// By layout, sending and receiving stage: the hash and first rank of the stages' pairs.
  std::map<std::tuple<LayoutKey, int, int>, std::pair<std::size_t, topology::NodeId>> pair_keys;
};

std::shared_ptr<CommCache> make_comm_cache() { return std::make_shared<CommCache>(); }

namespace {

/// A set of groups' hash, fed rank by rank (so a set need not be built to be looked up).
class GroupsHash {
 public:
  explicit GroupsHash(std::size_t groups) : h_(groups) {}
  void rank(topology::NodeId r) { h_ = h_ * 1000003u ^ (r + 0x9e3779b9u + (h_ << 6) + (h_ >> 2)); }
  void end_group(std::size_t size) { h_ = h_ * 31u + size; }
  [[nodiscard]] std::size_t value() const { return h_; }

 private:
  std::size_t h_;
};

std::size_t hash_groups(const std::vector<std::vector<topology::NodeId>>& groups) {
  GroupsHash h(groups.size());
  for (const auto& g : groups) {
    for (auto r : g) h.rank(r);
    h.end_group(g.size());
  }
  return h.value();
}

class CommCost {
 public:
  CommCost(const topology::Topology& t, const Plan& p, const collectives::NetworkModel& net, std::size_t domain,
           CommCache& cache, bool link_bytes)
      : scale_up_bytes(static_cast<std::size_t>(p.pp)),
        scale_out_bytes(static_cast<std::size_t>(p.pp)),
        t_(t), p_(p), net_(net), domain_(domain == 0 ? 1 : domain), cache_(cache), layout_(layout_key(p)) {
    if (link_bytes) link_bytes_.assign(t.num_links(), 0.0);
  }
  collectives::CostParams params;  ///< passed to every network-model call
  const collectives::FlowExchange* partition = nullptr;  ///< see StepOptions::partition
  bool by_class = true;                                   ///< see StepOptions::classes

  /// The bytes of a set of calls, to count again each time they run.
  struct Tally {
    Bytes up, out;
    std::vector<const CommEntry*> with_links;  ///< only when link bytes are asked for
  };

  /// Time of `count` runs of `op` over the groups of `kind` in `stage`, `bytes` as nccl-tests
  /// counts them; their bytes are counted to the stage.
  Seconds collective(Op op, GroupKind kind, int stage, Bytes bytes, int count = 1) {
    const CommEntry& e = entry(op, kind, stage, bytes);
    for (int i = 1; i < count; ++i) account(e, stage);
    return account(e, stage) * static_cast<double>(count);
  }
  /// The same, its bytes added to `into` instead: a chunk's collectives are costed once and
  /// counted (charge) at every pass that runs them.
  Seconds collective(Tally& into, Op op, GroupKind kind, int stage, Bytes bytes, int count = 1) {
    const CommEntry& e = entry(op, kind, stage, bytes);
    for (int i = 0; i < count; ++i) {
      into.up += e.up;
      into.out += e.out;
      if (!link_bytes_.empty()) into.with_links.push_back(&e);
    }
    return e.time * static_cast<double>(count);
  }
  /// Time of one such run, its bytes not counted (they are counted where it runs).
  Seconds time_of(Op op, GroupKind kind, int stage, Bytes bytes) { return entry(op, kind, stage, bytes).time; }

  /// Time of one point-to-point send of `bytes` from every rank of stage `from` to its peer in
  /// `to`; its bytes are counted `count` times.
  Seconds p2p(int from, int to, Bytes bytes, int count = 1) {
    const auto key = std::make_tuple(-1 - from, to, -1, bytes.value());
    auto it = local_.find(key);
    if (it == local_.end()) it = local_.emplace(key, p2p_cost(from, to, bytes)).first;
    for (int i = 1; i < count; ++i) account(it->second, from);
    return account(it->second, from);
  }
  CommEntry p2p_cost(int from, int to, Bytes bytes) {
    // The pairs' hash and first rank are kept for the layout (the shared cache's key); the
    // pairs themselves are built only to cost them.
    const auto key = std::make_tuple(layout_, from, to);
    auto it = cache_.pair_keys.find(key);
    if (it == cache_.pair_keys.end()) {
      const Groups set = pairs(from, to);
      it = cache_.pair_keys.emplace(key, std::make_pair(set.hash, set.groups.front().front())).first;
      return cost(Op::kSendRecv, set, bytes);
    }
    if (const CommEntry* e = cached(Op::kSendRecv, it->second.first, it->second.second, bytes)) return *e;
    return cost(Op::kSendRecv, pairs(from, to), bytes);
  }
  /// Every rank of stage `from` with its peer in stage `to`, as groups of two.
  Groups pairs(int from, int to) {
    Groups set{{}, 0};
    for (const auto& g : groups(from, GroupKind::kTp).groups) {
      for (auto r : g) {
        auto c = parallelism::coords_of(p_, r);
        c.pp = to;
        set.groups.push_back({r, static_cast<topology::NodeId>(parallelism::rank_of(p_, c))});
      }
    }
    set.hash = hash_groups(set.groups);
    return set;
  }

  /// Counts a tally's bytes to `stage` (once more).
  void charge(const Tally& tally, int stage) {
    scale_up_bytes[static_cast<std::size_t>(stage)] += tally.up;
    scale_out_bytes[static_cast<std::size_t>(stage)] += tally.out;
    for (const CommEntry* e : tally.with_links) add_links(*e);
  }

  /// Per stage, bytes one GPU of the stage sends, accumulated by every call.
  std::vector<Bytes> scale_up_bytes, scale_out_bytes;
  /// Bytes per link over the whole cluster (empty unless asked for).
  std::vector<double> link_bytes_;

 private:
  Seconds account(const CommEntry& e, int stage) {
    scale_up_bytes[static_cast<std::size_t>(stage)] += e.up;
    scale_out_bytes[static_cast<std::size_t>(stage)] += e.out;
    add_links(e);
    return e.time;
  }
  void add_links(const CommEntry& e) {
    if (!link_bytes_.empty() && e.links) {
      for (const auto& [l, b] : *e.links) link_bytes_[l] += b;
    }
  }
  const CommEntry& entry(Op op, GroupKind kind, int stage, Bytes bytes) {
    const auto key = std::make_tuple(static_cast<int>(kind), stage, static_cast<int>(op), bytes.value());
    auto it = local_.find(key);
    if (it == local_.end()) it = local_.emplace(key, cost(op, groups(stage, kind), bytes)).first;
    return it->second;
  }
  /// The groups of one kind in one stage, with their hash (the shared cache's key).
  const Groups& groups(int stage, GroupKind kind) {
    const auto key = std::make_tuple(layout_, stage, static_cast<int>(kind));
    auto it = cache_.groups.find(key);
    if (it == cache_.groups.end()) {
      auto g = parallelism::groups_in_stage(p_, stage, kind);
      const std::size_t h = hash_groups(g);
      it = cache_.groups.emplace(key, Groups{std::move(g), h}).first;
    }
    return it->second;
  }
  /// A class of groups that run a collective at the same cost: one representative (an index
  /// into the groups) and how many groups it stands for.
  struct Class {
    std::size_t rep, count;
  };
  /// Symmetry decided, not assumed: on a healthy fabric with cost levels (every route between
  /// two endpoints costs what their level costs), two groups whose members fall in the same
  /// pattern of shared groups at every level and of scale-up domains have the same routes'
  /// costs pair by pair, so one stands for both. Anything that makes routes differ from their
  /// level's cost (a failed link or node, bandwidth reserved on some links, a fabric with no
  /// levels) makes every group its own class.
  std::vector<Class> classes_of(const std::vector<std::vector<topology::NodeId>>& groups) const {
    std::vector<Class> out;
    const std::size_t levels = t_.num_cost_levels();
    if (!by_class || levels == 0 || t_.has_failures() || !params.reserved_Bps.empty()) {
      for (std::size_t i = 0; i < groups.size(); ++i) out.push_back({i, 1});
      return out;
    }
    std::map<std::vector<std::uint32_t>, std::size_t> seen;  // signature -> class
    std::vector<std::uint32_t> sig;
    std::unordered_map<std::size_t, std::uint32_t> first_of;
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const auto& g = groups[i];
      sig.clear();
      // Per level (and the scale-up domain), each member's group named by the first member
      // of the group that is in it.
      for (std::size_t level = 0; level < levels; ++level) {  // levels - 1 levels, then the domain
        first_of.clear();
        for (std::size_t a = 0; a < g.size(); ++a) {
          const std::size_t key = level + 1 < levels ? t_.cost_group(g[a], level) : g[a] / domain_;
          sig.push_back(first_of.emplace(key, static_cast<std::uint32_t>(a)).first->second);
        }
      }
      auto [it, fresh] = seen.emplace(sig, out.size());
      if (fresh) {
        out.push_back({i, 1});
      } else {
        ++out[it->second].count;
      }
    }
    return out;
  }
  /// The shared cache's entry for a set of groups (by hash and first rank), if it has one
  /// that serves this step.
  const CommEntry* cached(Op op, std::size_t hash, topology::NodeId first, Bytes bytes) const {
    const auto key = std::make_tuple(static_cast<int>(op), hash, first, bytes.value());
    if (auto it = cache_.entries.find(key); it != cache_.entries.end() && (link_bytes_.empty() || it->second.links)) {
      return &it->second;
    }
    return nullptr;
  }
  CommEntry cost(Op op, const Groups& set, Bytes bytes) {
    const auto& groups = set.groups;
    const auto key = std::make_tuple(static_cast<int>(op), set.hash, groups.front().front(), bytes.value());
    if (const CommEntry* e = cached(op, set.hash, groups.front().front(), bytes)) return *e;
    CommEntry e;
    const auto& g0 = groups.front();
    if (g0.size() >= 2) {
      const auto analytic = collectives::NetworkModel::build("analytic", "network");
      // Each class's representative picks its algorithm as NCCL's tuner would; the step
      // waits for the slowest class. The bytes are the mean GPU's.
      const auto classes = classes_of(groups);
      std::vector<collectives::Choice> choices;
      double members = 0.0;
      Bytes up, out;  // over every group
      for (const Class& c : classes) {
        choices.push_back(collectives::choose_schedule(t_, op, groups[c.rep], bytes, {}, {}, std::nullopt, *analytic));
        Bytes u, o;
        for (const auto& ph : choices.back().schedule.phases) {
          ph.for_each([&](const collectives::Transfer& x) {
            const bool inside = x.src / domain_ == x.dst / domain_;
            (inside ? u : o) += x.bytes * ph.repeat;
          });
        }
        const double size = static_cast<double>(groups[c.rep].size());
        if (classes.size() == 1) {
          e.up = u / size;
          e.out = o / size;
        }
        up += u * static_cast<double>(c.count);
        out += o * static_cast<double>(c.count);
        members += static_cast<double>(c.count) * size;
      }
      if (classes.size() > 1) {
        e.up = up / members;
        e.out = out / members;
      }
      const auto& choice = choices.front();
      // Every group inside one scale-up domain of a healthy fabric: groups never share links.
      bool local = !t_.has_failures();
      for (const auto& g : groups) {
        for (auto r : g) local = local && r / domain_ == g.front() / domain_;
      }
      auto slowest_class = [&](auto&& time_of) {
        double worst = 0.0;
        for (const auto& c : choices) worst = std::max(worst, time_of(c).value());
        return Seconds::of(worst);
      };
      if (net_.name() == "analytic") {
        e.time = slowest_class([](const collectives::Choice& c) { return c.time; });
        // On a tapered fabric the groups leaving their domains share the uplinks (a rail
        // leaf's spine links): cost them together, as the flow model does below.
        if (!local && groups.size() > 1 && tapered()) {
          std::vector<collectives::Schedule> all{choice.schedule};
          for (std::size_t i = 1; i < groups.size(); ++i) {
            auto s = collectives::build_schedule(t_, op, choice.schedule.algo, groups[i], bytes, {}, nullptr);
            if (s) all.push_back(std::move(*s));
          }
          e.time = net_.time(t_, all, params);
        }
      } else if (local || groups.size() == 1) {
        e.time = slowest_class([&](const collectives::Choice& c) { return net_.time(t_, c.schedule, params); });
      } else if (auto mine = my_share(op, choice.schedule.algo, groups, bytes)) {
        collectives::CostParams shared = params;
        shared.exchange = partition;
        shared.schedule_offset = mine->first;
        e.time = net_.time(t_, mine->schedules, shared);
      } else {
        std::vector<collectives::Schedule> all;
        for (const auto& g : groups) {
          auto s = collectives::build_schedule(t_, op, choice.schedule.algo, g, bytes, {}, nullptr);
          if (s) all.push_back(std::move(*s));
        }
        e.time = net_.time(t_, all, params);
      }
      if (!link_bytes_.empty()) e.links = route_bytes(op, choice.schedule, groups, bytes);
    }
    cache_.entries[key] = e;
    return e;
  }
  /// Whether the fabric has a level whose groups share a narrower egress than their links.
  [[nodiscard]] bool tapered() const {
    for (std::size_t j = 0; j + 1 < t_.num_cost_levels(); ++j) {
      if (t_.level_egress(j).value() > 0.0) return true;
    }
    return false;
  }
  /// This rank's contiguous share of the groups' schedules when the step is partitioned over
  /// ranks and every group's schedule has the same phases (what the lockstep expansion of
  /// each rank must agree on); nothing otherwise (every rank then times every group).
  struct Share {
    std::size_t first;  ///< position of this rank's first group among all the groups
    std::vector<collectives::Schedule> schedules;
  };
  std::optional<Share> my_share(Op op, collectives::Algo algo, const std::vector<std::vector<topology::NodeId>>& groups,
                                Bytes bytes) const {
    if (partition == nullptr || net_.name() != "flow") return std::nullopt;
    const auto ranks = static_cast<std::size_t>(partition->ranks());
    const auto rank = static_cast<std::size_t>(partition->rank());
    if (groups.size() < ranks) return std::nullopt;  // every rank must hold a schedule
    Share mine{groups.size() * rank / ranks, {}};
    bool valid = true;
    double shape = -1.0;
    for (std::size_t i = mine.first; i < groups.size() * (rank + 1) / ranks; ++i) {
      auto s = collectives::build_schedule(t_, op, algo, groups[i], bytes, {}, nullptr);
      if (!s) {
        valid = false;
        break;
      }
      // The phases' shape, hashed into the 52 bits a double holds exactly.
      std::uint64_t h = s->phases.size();
      for (const auto& ph : s->phases) {
        h = h * 1000003u ^ static_cast<std::uint64_t>(ph.repeat);
        h = h * 1000003u ^ ph.size();
      }
      const auto x = static_cast<double>(h & ((std::uint64_t{1} << 52) - 1));
      valid = valid && (shape < 0.0 || shape == x);
      shape = x;
      mine.schedules.push_back(std::move(*s));
    }
    const bool all_valid = partition->min(valid ? 1.0 : 0.0) == 1.0;
    const double lo = partition->min(valid ? shape : 0.0), hi = -partition->min(valid ? -shape : 0.0);
    if (!all_valid || lo != hi) return std::nullopt;
    return mine;
  }
  /// Bytes per link when every group runs the schedule `first` (of groups[0]) has.
  std::shared_ptr<const std::vector<std::pair<topology::LinkId, double>>> route_bytes(
      Op op, const collectives::Schedule& first, const std::vector<std::vector<topology::NodeId>>& groups, Bytes bytes) {
    std::vector<collectives::Schedule> all{first};
    for (std::size_t i = 1; i < groups.size(); ++i) {
      if (auto s = collectives::build_schedule(t_, op, first.algo, groups[i], bytes, {}, nullptr)) all.push_back(std::move(*s));
    }
    std::vector<double> dense(t_.num_links(), 0.0);
    collectives::add_link_bytes(t_, all, dense, params.flows_per_connection);
    auto sparse = std::make_shared<std::vector<std::pair<topology::LinkId, double>>>();
    for (std::size_t l = 0; l < dense.size(); ++l) {
      if (dense[l] > 0.0) sparse->emplace_back(static_cast<topology::LinkId>(l), dense[l]);
    }
    return sparse;
  }
  const topology::Topology& t_;
  const Plan& p_;
  const collectives::NetworkModel& net_;
  std::size_t domain_;
  CommCache& cache_;
  std::map<std::tuple<int, int, int, double>, CommEntry> local_;
  LayoutKey layout_;
};

// ---------------------------------------------------------------- the task graph

enum class Wait : std::uint8_t { kPipeline, kComm };

struct Dep {
  int task;
  double frac;  ///< ready at start + frac x duration of the task, plus `lag`
  double lag;
  Wait kind;
};

struct Task {
  int stream;
  double compute = 0, comm = 0;  ///< duration = compute + exposed communication inside it
  bool optimizer = false;
  int first_dep = -1, last_dep = -1;  ///< its dependencies, a list in Deps
  double start = 0, end = 0;
  bool done = false;
  int chain = -1;  ///< a chain of transfers instead of `comm` (an index into the chains)
  [[nodiscard]] double duration() const { return compute + comm; }
};

/// Transfers that run one after another on a stream, the i-th of n released at (i + 1)/n of
/// the task `pass` (a pass sweeping through its layers, each layer's gradients
/// reduce-scattered as it finishes): one task for a pass's n reduce-scatters, run as n tasks
/// with those dependencies would run.
struct Chain {
  int pass;
  std::span<const double> durations;
  double free = 0;  ///< when its stream was free for it (run_tasks sets it; the timeline replays from it)
};

/// Runs a chain's links on a stream free from `free`: link i of n starts once the stream is
/// free and (i + 1)/n of its pass is done (the lag, 0, added as run_tasks adds a dependency's,
/// so the sum rounds as it would); on_link(i, start, end) hears of each. Returns the last end.
template <class Fn>
double run_links(const Chain& c, const Task& pass, double free, Fn&& on_link) {
  const std::size_t n = c.durations.size();
  for (std::size_t i = 0; i < n; ++i) {
    const double frac = static_cast<double>(i + 1) / static_cast<double>(n);
    const double at = std::max(free, pass.start + frac * (pass.end - pass.start) + 0.0);
    on_link(i, at, at + c.durations[i]);
    free = at + c.durations[i];
  }
  return free;
}

/// Every task's dependencies, each task's a linked list in the order they were added (so a
/// step's hundreds of thousands of tasks allocate nothing each).
struct Deps {
  struct Link {
    Dep dep;
    int next = -1;
  };
  std::vector<Link> links;
  void add(std::vector<Task>& tasks, int task, const Dep& d) {
    Task& k = tasks[static_cast<std::size_t>(task)];
    const int id = static_cast<int>(links.size());
    links.push_back({d, -1});
    (k.last_dep < 0 ? k.first_dep : links[static_cast<std::size_t>(k.last_dep)].next) = id;
    k.last_dep = id;
  }
};

struct StreamStats {
  double compute = 0, comm = 0, bubble = 0, other = 0, end = 0;
};

/// Runs the tasks: each stream executes its tasks in order, each as soon as the stream is free
/// and its dependencies are ready. Durations are known, so the event order is fixed by the
/// dependencies; the loop advances any stream whose head is ready until all are done.
std::vector<StreamStats> run_tasks(std::vector<Task>& tasks, const Deps& deps, std::vector<Chain>& chains,
                                   const std::vector<std::vector<int>>& streams) {
  std::vector<std::size_t> head(streams.size(), 0);
  std::vector<StreamStats> stats(streams.size());
  std::size_t remaining = tasks.size();
  while (remaining > 0) {
    bool progress = false;
    for (std::size_t s = 0; s < streams.size(); ++s) {
      while (head[s] < streams[s].size()) {
        Task& k = tasks[streams[s][head[s]]];
        double ready = stats[s].end;
        Wait why = Wait::kPipeline;
        bool ok = true;
        for (int l = k.first_dep; l >= 0; l = deps.links[static_cast<std::size_t>(l)].next) {
          const Dep& d = deps.links[static_cast<std::size_t>(l)].dep;
          const Task& pre = tasks[static_cast<std::size_t>(d.task)];
          if (!pre.done) {
            ok = false;
            break;
          }
          const double at = pre.start + d.frac * (pre.end - pre.start) + d.lag;
          if (at > ready) {
            ready = at;
            why = d.kind;
          }
        }
        if (!ok) break;
        if (k.chain >= 0) {  // its links in order, each when the stream is free and it is released
          Chain& c = chains[static_cast<std::size_t>(k.chain)];
          const Task& pass = tasks[static_cast<std::size_t>(c.pass)];
          if (!pass.done) break;
          c.free = stats[s].end;
          k.end = run_links(c, pass, c.free, [&](std::size_t i, double at, double) {
            k.start = at;  // the last link's: what waits for the chain waits for it, as for n tasks
            stats[s].comm += at - stats[s].end;
            stats[s].comm += c.durations[i];
            stats[s].end = at + c.durations[i];
          });
          k.done = true;
          ++head[s];
          --remaining;
          progress = true;
          continue;
        }
        const double gap = ready - stats[s].end;
        (why == Wait::kComm ? stats[s].comm : stats[s].bubble) += gap;
        k.start = ready;
        k.end = ready + k.duration();
        k.done = true;
        (k.optimizer ? stats[s].other : stats[s].compute) += k.compute;
        stats[s].comm += k.comm;
        stats[s].end = k.end;
        ++head[s];
        --remaining;
        progress = true;
      }
    }
    if (!progress) throw std::logic_error("engine: the step program deadlocked (a dependency cycle)");
  }
  return stats;
}


/// One composed step: per-layer and per-chunk costs, computed once each, then per stage the
/// tasks of its compute and data-parallel streams, run by run_tasks. run() builds and runs it
/// once; the steps of build() add the tasks in an order the results depend on (collectives
/// are costed and their bytes counted in that order).
class ComposedStep {
 public:
  ComposedStep(const Scenario& sc, const Plan& p, const topology::Topology& t, const StepOptions& o, Watts reserve)
      : sc_(sc), p_(p), m_(*sc.model), o_(o),
        gpu_(sc.cluster.gpu, {.power_cap = o.power_cap, .reserve = reserve, .precision = hardware::gemm_precision(p.fp8(), p.fp8_blockwise)}),
        shard_(shard_of(m_, p)), pc_(parallelism::count_params(m_)),
        cache_(o.cache ? o.cache : make_comm_cache()),
        comm_(t, p, *o.network, static_cast<std::size_t>(sc.cluster.scale_up_domain), *cache_, o.link_bytes),
        speed_(static_cast<std::size_t>(p.pp), 1.0),
        act_bytes_(2.0 * static_cast<double>(p.micro_batch * p.seq_len) / p.cp * static_cast<double>(m_.hidden)),
        kv_bytes_(2.0 * 2.0 * static_cast<double>(p.micro_batch * p.seq_len) / p.cp * static_cast<double>(m_.kv_heads) *
                  static_cast<double>(m_.head_dim) / p.tp),
        v_(p.vpp), m_count_(static_cast<int>(p.micro_batches)),
        gather_weights_(p.zero >= 1 && p.dp * p.cp > 1),
        hbm_(static_cast<std::size_t>(p.pp), 0.0),
        streams_(static_cast<std::size_t>(2 * p.pp)),
        f_id_(static_cast<std::size_t>(p.pp * p.vpp), std::vector<int>(static_cast<std::size_t>(m_count_), -1)),
        b_id_(f_id_), w_id_(f_id_),
        last_backward_(static_cast<std::size_t>(p.pp * p.vpp), -1),
        dp_tasks_(static_cast<std::size_t>(p.pp)),
        early_gather_(static_cast<std::size_t>(p.pp), -1),
        embedding_sync_(static_cast<std::size_t>(p.pp), -1) {
    comm_.params.reserved_Bps = o.reserved_Bps;
    if (sc.cluster.scale_out) comm_.params.flows_per_connection = static_cast<std::uint32_t>(sc.cluster.scale_out->flows_per_connection);
    comm_.partition = o.partition;
    comm_.by_class = o.classes;
  }

  StepResult run() {
    r_.memory = memory_per_gpu(sc_, p_);
    r_.clock = gpu_.clock();
    // Slow GPUs (cluster.slow_gpus): a stage runs at its slowest GPU's speed, since its TP, CP
    // and DP peers wait for it at every collective and its pipeline neighbours for its sends.
    r_.stragglers = stragglers(sc_, p_);
    for (const auto& x : r_.stragglers) {
      speed_[static_cast<std::size_t>(x.stage)] = std::min(speed_[static_cast<std::size_t>(x.stage)], x.speed);
    }
    head_ = pass_cost(parallelism::head_forward(m_, shard_));
    reserve_tasks();
    add_early_gathers();
    for (int s = 0; s < p_.pp; ++s) add_passes(s);
    add_gather_waits();
    add_pipeline_sends();
    add_dp_buckets();
    add_embedding_sync();
    for (int s = 0; s < p_.pp; ++s) add_optimizer(s);
    const auto stats = run_tasks(tasks_, deps_, chains_, streams_);
    if (o_.timeline) fill_timeline();
    const double step = fill_times(stats);
    fill_totals(step);
    r_.link_bytes = std::move(comm_.link_bytes_);
    return std::move(r_);
  }

 private:
  using Tally = CommCost::Tally;

  /// One layer's passes on one GPU (dense and MoE layers differ).
  struct PassCost {
    double fwd = 0, fwd_attention = 0, bwd_input = 0, bwd_weight = 0;  // compute
    double flops = 0, model_flops = 0, attention_flops = 0;  // hardware and model FLOPs
    // HBM bytes: of the kernels that run forward and (about twice) backward, and of the ones
    // that run in one pass only (FP8's casts, MoE's token permutations); of core attention
    // (what selective recompute runs again).
    double hbm = 0, hbm_forward = 0, hbm_backward = 0, hbm_attention = 0;
  };
  /// One pass over chunk c of stage s.
  struct ChunkCost {
    double fwd = 0, fwd_comm = 0, bwd = 0, bwd_comm = 0, wgt = 0;
    std::vector<double> scatters;  ///< ZeRO-2/3: each layer's gradient reduce-scatter, last layer first
    double flops_model = 0, flops_hw = 0, hbm = 0;
    Tally fwd_comms, bwd_comms;  ///< the collectives of one forward, one backward
  };
  /// How a TP collective overlaps its GEMM (see tp_overlap_of_layer).
  struct Overlap {
    int chunks;  ///< 0: bulk (beside the whole GEMM)
    int sms;
  };

  PassCost pass_cost(const std::vector<Kernel>& ks) {
    PassCost c;
    for (const auto& k : ks) {
      if (k.pass == parallelism::KernelPass::kBackward) {  // FP8's output-gradient casts, ...
        c.bwd_input += gpu_.time(k).value();
        c.hbm_backward += k.bytes.value();
        continue;
      }
      const double dt = gpu_.time(k).value();
      if (o_.timeline) r_.ops.push_back({k.name, k.flops, k.bytes, Seconds::of(dt)});
      c.fwd += dt;
      const double counted = k.kind == KernelKind::kElementwise ? 0.0 : k.flops.value();
      c.flops += counted;
      c.model_flops += counted * k.useful;
      (k.pass == parallelism::KernelPass::kForward ? c.hbm_forward : c.hbm) += k.bytes.value();
      if (k.core_attention) {
        c.fwd_attention += dt;
        c.attention_flops += counted;
        c.hbm_attention += k.bytes.value();
      }
      if (k.kind == KernelKind::kGemm) {
        // Both operands of attention's batched GEMMs are activations: both gradients are
        // input gradients, needed before the previous layer's backward.
        const double wgrad = gpu_.time(parallelism::weight_gradient(k)).value();
        c.bwd_input += gpu_.time(parallelism::data_gradient(k)).value() + (k.core_attention ? wgrad : 0.0);
        c.bwd_weight += k.core_attention ? 0.0 : wgrad;
      } else if (k.kind == KernelKind::kElementwise) {
        if (k.pass == parallelism::KernelPass::kBoth) c.bwd_input += gpu_.time(parallelism::elementwise_backward(k)).value();
      } else {
        c.bwd_input += gpu_.time(parallelism::attention_backward(k)).value();
      }
    }
    return c;
  }

  const PassCost& cost_of_layer(int i) {
    const bool moe = parallelism::is_moe_layer(m_, i);
    auto it = layer_costs_.find(moe);
    if (it == layer_costs_.end()) it = layer_costs_.emplace(moe, pass_cost(parallelism::layer_forward(m_, i, shard_))).first;
    return it->second;
  }

  /// Communication inside one layer's forward or backward on one GPU (exposed: Megatron runs
  /// TP and EP collectives on the compute stream's critical path), its bytes into `into`.
  double layer_comm(int layer, int stage, Tally& into) {
    double c = 0.0;
    if (p_.tp > 1) {
      if (p_.sp) {
        c += comm_.collective(into, Op::kAllGather, GroupKind::kTp, stage, Bytes::of(act_bytes_), 2).value();
        c += comm_.collective(into, Op::kReduceScatter, GroupKind::kTp, stage, Bytes::of(act_bytes_), 2).value();
      } else {
        c += comm_.collective(into, Op::kAllReduce, GroupKind::kTp, stage, Bytes::of(act_bytes_), 2).value();
      }
    }
    if (p_.ep > 1 && parallelism::is_moe_layer(m_, layer)) {
      // Dispatch and combine: each GPU sends its tokens' top_k copies (hidden-sized).
      const double routed = act_bytes_ / (p_.sp ? p_.tp : 1) * m_.top_k * p_.capacity_factor;
      c += comm_.collective(into, Op::kAllToAll, GroupKind::kEp, stage, Bytes::of(routed), 2).value();
    }
    return c;
  }

  /// CP: the ring exchange of K/V blocks of one pass (overlapped with the attention of the
  /// block in hand), its bytes into `into`; 0 without CP.
  double cp_ring(int stage, Tally& into) {
    return p_.cp > 1 ? comm_.collective(into, Op::kAllGather, GroupKind::kCp, stage, Bytes::of(kv_bytes_ * p_.cp)).value() : 0.0;
  }

  /// A collective of time c beside a GEMM of time g (kernel overhead included) that runs on
  /// sms - how.sms SMs while they overlap; the time saved or lost against c then g.
  [[nodiscard]] double overlapped(double c, double g, Overlap how) const {
    const double ov = sc_.cluster.gpu.kernel_overhead.value();
    const double slow = static_cast<double>(sc_.cluster.gpu.sms) / (sc_.cluster.gpu.sms - how.sms);
    if (how.chunks == 0) return std::max(c, (g - ov) * slow + ov) - (c + g);
    const double n = how.chunks, cc = c / n, gc = (g - ov) * slow / n + ov;
    return cc + (n - 1.0) * std::max(cc, gc) + gc - (c + g);  // a two-stage pipeline of n chunks
  }

  // TP communication overlap (parallel.tp_comm_overlap, Megatron-Core's --tp-comm-overlap over
  // Transformer Engine's userbuffers): each SP all-gather is pipelined with the GEMM that reads
  // its output and each reduce-scatter with the GEMM that writes its input, in chunks, the
  // communication kernels taking SMs from the GEMM while both run. The methods and SM counts
  // are NeMo's userbuffers configuration for Llama 70B on H100 at TP 8 (NVIDIA/NeMo,
  // nemo/collections/llm/recipes/tp_overlap_configs/userbuffers.py,
  // userbuffers_bf16_h100_h8192_tp4_mbs1_seqlen8192) [S]; the same SM counts on other GPUs [A]:
  //   forward all-gathers (qkv_fprop, fc1_fprop) and backward all-gathers of the output
  //   gradient (proj_dgrad, fc2_dgrad): ring exchange, tp chunks, 1 SM (copy engines);
  //   forward reduce-scatters: pipeline, 4 splits, 24 SMs after the attention (proj_fprop)
  //   and 16 after the MLP (fc2_fprop), the GEMM launched on the rest (set_sm_margin);
  //   backward reduce-scatters of the input gradient: bulk, beside the weight-gradient GEMM,
  //   24 SMs (qkv_wgrad) and 4 (fc1_wgrad).
  // MoE blocks keep their TP communication exposed (their token dispatcher's, not TE's).
  /// Per layer, the change of its exposed communication, forward and backward.
  std::pair<double, double> tp_overlap_of_layer(int i, int stage) {
    if (!p_.tp_comm_overlap) return {0.0, 0.0};
    if (sc_.cluster.gpu.sms <= 24) {
      throw Error("cluster.gpu.sms", "parallel.tp_comm_overlap needs the GPU's SM count, above the 24 its reduce-scatters take");
    }
    const std::pair<int, int> key{parallelism::is_moe_layer(m_, i) ? 1 : 0, stage};
    if (auto it = tp_overlaps_.find(key); it != tp_overlaps_.end()) return it->second;
    const double ag = comm_.time_of(Op::kAllGather, GroupKind::kTp, stage, Bytes::of(act_bytes_)).value();
    const double rs = comm_.time_of(Op::kReduceScatter, GroupKind::kTp, stage, Bytes::of(act_bytes_)).value();
    const auto ks = parallelism::layer_forward(m_, i, shard_);
    double fwd = 0.0, bwd = 0.0;
    int block = 0;  // 0: attention, 1: MLP
    for (std::size_t a = 0; a < ks.size(); ++a) {
      if (!ks[a].opens_block) continue;
      std::size_t end = a + 1;
      while (end < ks.size() && !ks[end].closes_block) ++end;
      const Kernel* first = nullptr;
      const Kernel* last = nullptr;
      bool moe = false;
      for (std::size_t b = a + 1; b < end; ++b) {
        moe = moe || ks[b].expert_in || ks[b].expert_out;
        if (ks[b].kind != KernelKind::kGemm || ks[b].core_attention) continue;
        if (first == nullptr) first = &ks[b];
        last = &ks[b];
      }
      if (!moe && first != nullptr) {
        const double g_in = gpu_.time(*first).value(), g_out = gpu_.time(*last).value();
        fwd += overlapped(ag, g_in, {p_.tp, 1}) + overlapped(rs, g_out, {4, block == 0 ? 24 : 16});
        bwd += overlapped(ag, gpu_.time(parallelism::data_gradient(*last)).value(), {p_.tp, 1}) +
               overlapped(rs, gpu_.time(parallelism::weight_gradient(*first)).value(), {0, block == 0 ? 24 : 4});
      }
      ++block;
    }
    return tp_overlaps_[key] = {fwd, bwd};
  }

  /// One pass over chunk c of stage s: its layers' compute and exposed communication, and
  /// the collectives each pass runs, costed once.
  const ChunkCost& chunk_cost(int c, int s) {
    auto it = chunk_costs_.find({c, s});
    if (it != chunk_costs_.end()) return it->second;
    ChunkCost cc;
    const int first = p_.first_layer(c, s);
    for (int i = first; i < first + p_.layers_of(c, s); ++i) add_layer(cc, i, s);
    if (p_.zero >= 2 && p_.dp * p_.cp > 1 && p_.layers_of(c, s) > 0) add_zero(cc, c, s);
    if (c == p_.vpp - 1 && s == p_.pp - 1) {
      cc.fwd += head_.fwd;
      cc.bwd += head_.bwd_input + head_.bwd_weight;
      cc.flops_model += 3.0 * head_.model_flops;
      cc.flops_hw += 3.0 * head_.flops;
      cc.hbm += 3.0 * head_.hbm + head_.hbm_forward + head_.hbm_backward;
    }
    return chunk_costs_[{c, s}] = std::move(cc);
  }

  /// Layer i of stage s into its chunk's cost: the same collectives both ways (a full
  /// recompute runs the forward's again), the recomputed part of the forward in the backward.
  void add_layer(ChunkCost& cc, int i, int s) {
    const PassCost& lc = cost_of_layer(i);
    const auto [fwd_overlap, bwd_overlap] = tp_overlap_of_layer(i, s);
    const double fc = layer_comm(i, s, cc.fwd_comms) + fwd_overlap;
    const double cp_exposed = std::max(0.0, cp_ring(s, cc.fwd_comms) - lc.fwd_attention);
    const double bc = layer_comm(i, s, cc.bwd_comms) + bwd_overlap;
    cp_ring(s, cc.bwd_comms);
    if (p_.recompute == Recompute::kFull) {
      layer_comm(i, s, cc.bwd_comms);
      cp_ring(s, cc.bwd_comms);
    }
    cc.fwd += lc.fwd;
    cc.fwd_comm += fc + cp_exposed;
    double recompute = 0.0, recompute_comm = 0.0, recompute_flops = 0.0, recompute_hbm = 0.0;
    if (p_.recompute == Recompute::kSelective) {
      recompute = lc.fwd_attention;
      recompute_flops = lc.attention_flops;
      recompute_hbm = lc.hbm_attention;
    } else if (p_.recompute == Recompute::kFull) {
      recompute = lc.fwd;
      recompute_comm = fc + cp_exposed;
      recompute_flops = lc.flops;
      recompute_hbm = lc.hbm + lc.hbm_forward;
    }
    const bool split = p_.schedule == parallelism::PipeSchedule::kZeroBubble;
    cc.bwd += recompute + lc.bwd_input + (split ? 0.0 : lc.bwd_weight);
    cc.wgt += split ? lc.bwd_weight : 0.0;
    cc.bwd_comm += bc + recompute_comm + cp_exposed;
    if (i == 0) {
      r_.layer_forward = Seconds::of(lc.fwd + fc + cp_exposed);
      r_.layer_backward = Seconds::of(recompute + recompute_comm + lc.bwd_input + lc.bwd_weight + bc + cp_exposed);
    }
    cc.flops_model += 3.0 * lc.model_flops;
    cc.flops_hw += 3.0 * lc.flops + recompute_flops;
    cc.hbm += 3.0 * lc.hbm + lc.hbm_forward + lc.hbm_backward + recompute_hbm;
  }

  /// ZeRO-3 gathers each layer's weights before its forward and again before its backward,
  /// prefetched layer by layer, so only the first layer's share and whatever exceeds the
  /// compute is exposed. ZeRO-2 and 3 reduce-scatter each layer's gradients in every backward
  /// as the layer's backward ends, on the data-parallel stream (a chain task), as FSDP does:
  /// they overlap the next layers' and micro-batches' compute.
  void add_zero(ChunkCost& cc, int c, int s) {
    const int first = p_.first_layer(c, s), layers = p_.layers_of(c, s);
    double dense = 0, expert = 0;
    for (int i = first; i < first + layers; ++i) {
      const auto lp = parallelism::layer_params(m_, pc_, p_, i);
      dense += lp.dense;
      expert += lp.expert;
    }
    auto over_dp = [&](Tally& into, Op op, double bytes_per_param) {
      double x = comm_.collective(into, op, GroupKind::kDpCp, s, Bytes::of(bytes_per_param * dense)).value();
      if (expert > 0 && p_.expert_dp() > 1) {
        x += comm_.collective(into, op, GroupKind::kExpertDp, s, Bytes::of(bytes_per_param * expert)).value();
      }
      return x;
    };
    const double gather = p_.zero >= 3 ? over_dp(cc.fwd_comms, Op::kAllGather, kWeightBytes) : 0.0;
    if (p_.zero >= 3) over_dp(cc.bwd_comms, Op::kAllGather, kWeightBytes);
    // Per layer, last first (the backward's order); counted at every backward pass.
    for (int i = first + layers - 1; i >= first; --i) {
      const auto lp = parallelism::layer_params(m_, pc_, p_, i);
      double x = comm_.collective(cc.bwd_comms, Op::kReduceScatter, GroupKind::kDpCp, s, Bytes::of(p_.grad_bytes * lp.dense)).value();
      if (lp.expert > 0 && p_.expert_dp() > 1) {
        x += comm_.collective(cc.bwd_comms, Op::kReduceScatter, GroupKind::kExpertDp, s, Bytes::of(p_.grad_bytes * lp.expert)).value();
      }
      cc.scatters.push_back(x);
    }
    cc.fwd_comm += std::max(0.0, gather - cc.fwd) + gather / layers;
    cc.bwd_comm += std::max(0.0, gather - cc.bwd) + gather / layers;
  }

  // ------------------------------------------------------------ the tasks

  /// Adds task `k` to its stream; its id.
  int add_task(Task k) {
    const int id = static_cast<int>(tasks_.size());
    streams_[static_cast<std::size_t>(k.stream)].push_back(id);
    tasks_.push_back(std::move(k));
    return id;
  }
  void add_dep(int task, const Dep& d) { deps_.add(tasks_, task, d); }
  /// Names task `id` for a timeline: its compute part and its communication part.
  void label(std::size_t id, std::string name, std::string comm) {
    if (labels_.size() <= id) labels_.resize(id + 1);
    labels_[id] = {std::move(name), std::move(comm)};
  }
  /// The name of a pass's exposed communication in a timeline.
  [[nodiscard]] std::string layer_comm_name() const {
    std::string n;
    auto add = [&](const std::string& x) { n += (n.empty() ? "" : " + ") + x; };
    if (p_.tp > 1) add(p_.sp ? "TP all-gather/reduce-scatter" : "TP all-reduce");
    if (p_.cp > 1) add("CP ring");
    if (p_.ep > 1) add("EP all-to-all");
    if (p_.zero >= 3 && p_.dp * p_.cp > 1) add("ZeRO-3 gather");
    return n.empty() ? std::string("comm") : n;
  }

  /// Room for every task and dependency (passes, a chain of scatters per pass, buckets).
  void reserve_tasks() {
    const std::size_t passes = static_cast<std::size_t>(p_.pp) * v_ * m_count_ * 3;
    const std::size_t per_pass = p_.zero >= 2 ? 2 : 1;
    tasks_.reserve(passes * per_pass + 2 * static_cast<std::size_t>(m_.layers + 2 * p_.pp));
    deps_.links.reserve(tasks_.capacity() + passes);
  }

  /// ZeRO-1/2's weight all-gather of stage s: its time over the data-parallel groups.
  double param_gather(int s) {
    const auto [dense, expert] = stage_params(m_, p_, s);
    double t_ag = comm_.collective(Op::kAllGather, GroupKind::kDpCp, s, Bytes::of(kWeightBytes * dense)).value();
    if (expert > 0 && p_.expert_dp() > 1) {
      t_ag += comm_.collective(Op::kAllGather, GroupKind::kExpertDp, s, Bytes::of(kWeightBytes * expert)).value();
    }
    return t_ag;
  }

  /// ZeRO-1/2's weight all-gather, overlapped (Megatron's --overlap-param-gather): first on
  /// the data-parallel stream, the weights of the step before gathered as this step's first
  /// micro-batch goes forward. Without the overlap it follows the optimizer (add_optimizer).
  void add_early_gathers() {
    if (!gather_weights_ || !p_.overlap_param_gather) return;
    for (int s = 0; s < p_.pp; ++s) {
      Task ag;
      ag.stream = 2 * s + 1;
      ag.comm = param_gather(s);
      if (o_.timeline) label(tasks_.size(), "", "DP all-gather (ZeRO parameters, overlapped)");
      early_gather_[static_cast<std::size_t>(s)] = add_task(std::move(ag));
    }
  }

  /// Stage s's passes in its schedule's order on its compute stream, each with its exposed
  /// communication; under ZeRO-2/3 each gradient pass's reduce-scatters as a chain on the
  /// data-parallel stream.
  void add_passes(int s) {
    const auto si = static_cast<std::size_t>(s);
    const std::string comm_name = o_.timeline ? layer_comm_name() : std::string();
    for (const auto& op : parallelism::stage_order(p_.schedule, p_.pp, v_, m_count_, s, p_.microbatch_group)) {
      const ChunkCost& cc = chunk_cost(op.chunk, s);
      Task k;
      k.stream = 2 * s;
      const auto vs = static_cast<std::size_t>(op.chunk * p_.pp + s);
      const auto mb = static_cast<std::size_t>(op.micro_batch);
      if (o_.timeline) {
        const std::string where = " mb " + std::to_string(op.micro_batch) + (v_ > 1 ? " chunk " + std::to_string(op.chunk) : "");
        label(tasks_.size(), (op.pass == Pass::kForward ? "forward" : op.pass == Pass::kBackward ? "backward" : "weight grad") + where,
              comm_name + where);
      }
      const int id = static_cast<int>(tasks_.size());
      if (op.pass == Pass::kForward) {
        k.compute = cc.fwd / speed_[si];
        k.comm = cc.fwd_comm;
        flops_model_ += cc.flops_model;
        flops_hw_ += cc.flops_hw;
        hbm_[si] += cc.hbm;
        comm_.charge(cc.fwd_comms, s);
        f_id_[vs][mb] = id;
      } else if (op.pass == Pass::kBackward) {
        k.compute = cc.bwd / speed_[si];
        k.comm = cc.bwd_comm;
        comm_.charge(cc.bwd_comms, s);
        b_id_[vs][mb] = id;
        if (p_.schedule != parallelism::PipeSchedule::kZeroBubble) last_backward_[vs] = id;
      } else {
        k.compute = cc.wgt / speed_[si];
        w_id_[vs][mb] = id;
        last_backward_[vs] = id;
      }
      const bool grads = op.pass == (p_.schedule == parallelism::PipeSchedule::kZeroBubble ? Pass::kWeight : Pass::kBackward);
      add_task(std::move(k));
      // ZeRO-2/3: each layer's gradients are reduce-scattered as the pass reaches it.
      const std::size_t n = cc.scatters.size();
      if (grads && n > 0) {
        Task x;
        x.stream = 2 * s + 1;
        x.chain = static_cast<int>(chains_.size());
        chains_.push_back({id, cc.scatters});
        if (o_.timeline) {
          auto& names = chain_labels_[tasks_.size()];
          for (std::size_t li = 0; li < n; ++li) {
            names.push_back("ZeRO reduce-scatter layer " + std::to_string(p_.first_layer(op.chunk, s) + static_cast<int>(n - 1 - li)) +
                            " mb " + std::to_string(op.micro_batch));
          }
        }
        dp_tasks_[si].push_back(add_task(std::move(x)));
      }
    }
  }

  /// With the overlapped weight gather, each layer's first forward waits for its weights,
  /// gathered in layer order: the first micro-batch's chunk starts no earlier than the latest
  /// of (gathered through layer j) less (the chunk's time before layer j), its layers taken as
  /// equal.
  void add_gather_waits() {
    for (int s = 0; gather_weights_ && p_.overlap_param_gather && s < p_.pp; ++s) {
      std::vector<double> cum;  // the stage's parameters through each of its layers, in order
      for (int c = 0; c < v_; ++c) {
        for (int i = p_.first_layer(c, s); i < p_.first_layer(c, s) + p_.layers_of(c, s); ++i) {
          const auto lp = parallelism::layer_params(m_, pc_, p_, i);
          cum.push_back((cum.empty() ? 0.0 : cum.back()) + lp.dense + lp.expert);
        }
      }
      if (cum.empty()) continue;  // a stage without layers
      const int gather_id = early_gather_[static_cast<std::size_t>(s)];
      const double t_gather = tasks_[static_cast<std::size_t>(gather_id)].comm;
      std::size_t at = 0;
      for (int c = 0; c < v_; ++c) {
        const int n = p_.layers_of(c, s);
        const int first_f = f_id_[static_cast<std::size_t>(c * p_.pp + s)][0];
        double ready = 0.0;
        for (int j = 0; j < n && first_f >= 0; ++j) {
          const double before = tasks_[static_cast<std::size_t>(first_f)].compute * j / n;
          ready = std::max(ready, (cum.back() > 0.0 ? cum[at + static_cast<std::size_t>(j)] / cum.back() : 1.0) * t_gather - before);
        }
        at += static_cast<std::size_t>(n);
        if (first_f >= 0) add_dep(first_f, {gather_id, 0.0, ready, Wait::kComm});
      }
    }
  }

  /// Pipeline dependencies: activations forward, gradients backward, after a p2p send. The
  /// tensor is split over the TP ranks (with SP it already is; without, Megatron's
  /// scatter/gather optimization, Narayanan et al. SC'21 sec. 4.1, sends 1/tp per rank and
  /// all-gathers it over the scale-up link on arrival).
  void add_pipeline_sends() {
    const double p2p_bytes = act_bytes_ / p_.tp;
    const double regather = p_.sp || p_.tp == 1 || p_.pp == 1
                                ? 0.0
                                : comm_.collective(Op::kAllGather, GroupKind::kTp, 0, Bytes::of(act_bytes_)).value();
    const int vstages = p_.pp * v_;
    for (int vs = 0; vs < vstages; ++vs) {
      const int s = vs % p_.pp;
      const auto here = static_cast<std::size_t>(vs);
      if (vs > 0) {
        const int from = (vs - 1) % p_.pp;
        const double lag = comm_.p2p(from, s, Bytes::of(p2p_bytes), m_count_).value() + regather;
        for (std::size_t j = 0; j < static_cast<std::size_t>(m_count_); ++j) add_dep(f_id_[here][j], {f_id_[here - 1][j], 1.0, lag, Wait::kPipeline});
      }
      if (vs < vstages - 1) {
        const int from = (vs + 1) % p_.pp;
        const double lag = comm_.p2p(from, s, Bytes::of(p2p_bytes), m_count_).value() + regather;
        for (std::size_t j = 0; j < static_cast<std::size_t>(m_count_); ++j) add_dep(b_id_[here][j], {b_id_[here + 1][j], 1.0, lag, Wait::kPipeline});
      }
    }
  }

  /// Data parallelism without ZeRO-2/3 (which reduce-scatter inside every backward instead):
  /// per-layer gradient buckets, ready as the last backward of their chunk sweeps through its
  /// layers (last layer first); reduce-scatter (ZeRO-1) or all-reduce.
  void add_dp_buckets() {
    if (p_.dp * p_.cp <= 1 || p_.zero >= 2) return;
    const Op op = p_.zero >= 1 ? Op::kReduceScatter : Op::kAllReduce;
    for (int s = 0; s < p_.pp; ++s) {
      for (int c = v_ - 1; c >= 0; --c) {
        const int vs = c * p_.pp + s;
        const int layers = p_.layers_of(c, s);
        const int first = p_.first_layer(c, s);
        for (int li = layers - 1; li >= 0; --li) {
          const int i = first + li;
          const auto [dense, expert] = parallelism::layer_params(m_, pc_, p_, i);
          double t_comm = comm_.collective(op, GroupKind::kDpCp, s, Bytes::of(p_.grad_bytes * dense)).value();
          if (expert > 0 && p_.expert_dp() > 1) {
            t_comm += comm_.collective(op, GroupKind::kExpertDp, s, Bytes::of(p_.grad_bytes * expert)).value();
          }
          Task k;
          k.stream = 2 * s + 1;
          k.comm = t_comm;
          if (o_.timeline) {
            label(tasks_.size(), "", std::string("DP ") + (op == Op::kReduceScatter ? "reduce-scatter" : "all-reduce") +
                                         " layer " + std::to_string(i));
          }
          const double frac = p_.overlap_grad_reduce ? static_cast<double>(layers - li) / layers : 1.0;
          const int id = add_task(std::move(k));
          dp_tasks_[static_cast<std::size_t>(s)].push_back(id);
          add_dep(id, {last_backward_[static_cast<std::size_t>(vs)], frac, 0.0, Wait::kComm});
        }
      }
    }
  }

  /// Plain pipelines with tied embeddings: the last stage's copy of the word embedding has its
  /// gradients all-reduced with the first stage's after the data-parallel reduction, before
  /// the optimizer (Megatron-Core's _allreduce_word_embedding_grads; the step program's
  /// "embedding all-reduce"): over the two ranks, two ring steps of half the bytes each way,
  /// starting once both stages have reduced and finished their backwards. (MTP, the other
  /// reader of the copy, runs on the event engine only.)
  void add_embedding_sync() {
    if (p_.pp <= 1 || p_.ends_together() || !m_.tied_embeddings) return;
    const Bytes half = Bytes::of(p_.grad_bytes * pc_.embedding / p_.tp / 2.0);
    const double t_sync = comm_.p2p(0, p_.pp - 1, half, 2).value() * 2.0;
    comm_.p2p(p_.pp - 1, 0, half, 2);  // the other direction's bytes, beside it on full-duplex links
    std::vector<Dep> joint;
    for (int s : {0, p_.pp - 1}) {
      const auto& dp = dp_tasks_[static_cast<std::size_t>(s)];
      if (!dp.empty()) joint.push_back({dp.back(), 1.0, 0.0, Wait::kComm});
      for (int vs = s; vs < p_.pp * v_; vs += p_.pp) joint.push_back({last_backward_[static_cast<std::size_t>(vs)], 1.0, 0.0, Wait::kPipeline});
    }
    for (int s : {0, p_.pp - 1}) {
      Task k;
      k.stream = 2 * s + 1;
      k.comm = t_sync;
      if (o_.timeline) label(tasks_.size(), "", "embedding all-reduce (first and last stage)");
      const int id = add_task(std::move(k));
      for (const Dep& d : joint) add_dep(id, d);
      embedding_sync_[static_cast<std::size_t>(s)] = id;
    }
  }

  /// Stage s's optimizer (memory-bound Adam over this GPU's shard) after its last backward
  /// and data-parallel reduction, then ZeRO's parameter all-gather unless overlapped.
  void add_optimizer(int s) {
    const auto si = static_cast<std::size_t>(s);
    const auto [dense, expert] = stage_params(m_, p_, s);
    const double shard_params = p_.zero >= 1 ? dense / (p_.dp * p_.cp) + expert / p_.expert_dp() : dense + expert;
    Task opt;
    opt.stream = 2 * s;
    opt.optimizer = true;
    const Kernel adam = parallelism::optimizer_kernel(p_, shard_params);
    opt.compute = gpu_.time(adam).value() / speed_[si];
    if (o_.timeline && s == 0) r_.ops.push_back({adam.name, adam.flops, adam.bytes, Seconds::of(opt.compute)});
    hbm_[si] += adam.bytes.value();
    if (o_.timeline) label(tasks_.size(), "optimizer (Adam)", "");
    const int opt_id = add_task(std::move(opt));
    // The data-parallel stream runs its tasks in order, so its last one ends after all the others.
    if (!dp_tasks_[si].empty()) add_dep(opt_id, {dp_tasks_[si].back(), 1.0, 0.0, Wait::kComm});
    if (embedding_sync_[si] >= 0) add_dep(opt_id, {embedding_sync_[si], 1.0, 0.0, Wait::kComm});
    for (int vs = s; vs < p_.pp * v_; vs += p_.pp) add_dep(opt_id, {last_backward_[static_cast<std::size_t>(vs)], 1.0, 0.0, Wait::kPipeline});
    if (gather_weights_ && !p_.overlap_param_gather) {
      Task ag;
      ag.stream = 2 * s;  // the next step's forward needs the weights: on the critical path
      ag.comm = param_gather(s);
      if (o_.timeline) label(tasks_.size(), "", "DP all-gather (ZeRO parameters)");
      add_dep(add_task(std::move(ag)), {opt_id, 1.0, 0.0, Wait::kComm});
    }
  }

  // ------------------------------------------------------------ results

  /// Every task's compute and communication as run_tasks ran them (a chain's links again).
  void fill_timeline() {
    labels_.resize(tasks_.size());
    for (std::size_t id = 0; id < tasks_.size(); ++id) {
      const Task& k = tasks_[id];
      const int stage = k.stream / 2;
      const bool dp_stream = k.stream % 2 == 1;
      if (k.chain >= 0) {
        const Chain& c = chains_[static_cast<std::size_t>(k.chain)];
        const Task& pass = tasks_[static_cast<std::size_t>(c.pass)];
        const auto& names = chain_labels_.at(id);
        run_links(c, pass, c.free, [&](std::size_t i, double at, double end) {
          if (c.durations[i] > 0.0) r_.timeline.push_back({stage, 2, names[i], Seconds::of(at), Seconds::of(end)});
        });
        continue;
      }
      if (k.compute > 0.0) {
        r_.timeline.push_back({stage, 0, labels_[id].first, Seconds::of(k.start), Seconds::of(k.start + k.compute)});
      }
      if (k.comm > 0.0) {
        r_.timeline.push_back({stage, dp_stream ? 2 : 1, labels_[id].second, Seconds::of(k.start + k.compute), Seconds::of(k.end)});
      }
    }
  }

  /// The step time and each stage's breakdown (the data-parallel stream's tail counted as
  /// exposed communication); the step time.
  double fill_times(const std::vector<StreamStats>& stats) {
    double step = 0.0;
    for (const auto& st : stats) step = std::max(step, st.end);
    r_.step_time = Seconds::of(step);
    double compute = 0, exposed = 0, bubble = 0, other = 0;
    for (std::size_t s = 0; s < static_cast<std::size_t>(p_.pp); ++s) {
      const auto& st = stats[2 * s];
      const auto& dp = stats[2 * s + 1];
      StageTimes times;
      times.compute = Seconds::of(st.compute);
      times.comm = Seconds::of(st.comm + std::max(0.0, dp.end - st.end));  // plus the DP tail
      times.bubble = Seconds::of(st.bubble + std::max(0.0, step - std::max(st.end, dp.end)));
      times.other = Seconds::of(st.other);
      compute += times.compute.value();
      exposed += times.comm.value();
      other += times.other.value();
      bubble += times.bubble.value();
      r_.stage_busy.push_back(times.compute);
      r_.stages.push_back(times);
    }
    r_.compute = Seconds::of(compute / p_.pp);
    r_.exposed_comm = Seconds::of(exposed / p_.pp);
    r_.bubble = Seconds::of(bubble / p_.pp);
    r_.other = Seconds::of(other / p_.pp);
    return step;
  }

  /// Throughput, FLOP rates, bytes and energy: each stage's representative times every replica
  /// of its stage.
  void fill_totals(double step) {
    const double replicas = static_cast<double>(p_.tp) * p_.dp * p_.cp;
    const double gpus = static_cast<double>(p_.gpus());
    const double model_flops = flops_model_ * replicas, hw_flops = flops_hw_ * replicas;
    const double tokens = static_cast<double>(p_.global_batch * p_.seq_len);
    r_.tokens_per_s = tokens / step;
    r_.model_flops_per_gpu = FlopRate::of(model_flops / gpus / step);
    r_.hardware_flops_per_gpu = FlopRate::of(hw_flops / gpus / step);
    r_.mfu = r_.model_flops_per_gpu.value() / gpu_.peak().value();
    r_.hfu = r_.hardware_flops_per_gpu.value() / gpu_.peak().value();
    // Energy of one GPU of each stage: static power over the step, dynamic power while it
    // computes, and the bytes it moves through HBM and over its links.
    const EnergyPerBit link_up = sc_.cluster.scale_up.energy;
    const EnergyPerBit link_out = sc_.cluster.scale_out ? sc_.cluster.scale_out->link.energy : EnergyPerBit{};
    double energy = 0.0;
    std::vector<double> slow_count(static_cast<std::size_t>(p_.pp), 0.0);
    for (const auto& x : r_.stragglers) slow_count[static_cast<std::size_t>(x.stage)] += 1.0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(p_.pp); ++i) {
      StageTimes& times = r_.stages[i];
      // With slow GPUs the stage's times are theirs; its other GPUs compute for `speed` of that
      // and wait the rest: the stage's mean busy time.
      const double slow = slow_count[i] / replicas, busy = (times.compute + times.other).value();
      const Seconds mean_busy = Seconds::of(busy * (slow + (1.0 - slow) * speed_[i]));
      times.energy = gpu_.energy({Seconds::of(step), mean_busy, Bytes::of(hbm_[i]), comm_.scale_up_bytes[i], comm_.scale_out_bytes[i]},
                                 link_up, link_out);
      energy += times.energy.value() * replicas;
      r_.hbm_bytes += Bytes::of(hbm_[i] * replicas);
      r_.scale_up_bytes += comm_.scale_up_bytes[i] * replicas;
      r_.scale_out_bytes += comm_.scale_out_bytes[i] * replicas;
    }
    r_.step_energy = Joules::of(energy);
    r_.energy_per_token_j = energy / tokens;
    r_.cluster_avg_power = Watts::of(energy / step);
    r_.gpu_avg_power = Watts::of(energy / step / gpus);
  }

  const Scenario& sc_;
  const Plan& p_;
  const ModelSpec& m_;
  const StepOptions& o_;
  const hardware::GpuModel gpu_;
  const parallelism::Shard shard_;
  const parallelism::ParamCount pc_;
  std::shared_ptr<CommCache> cache_;
  CommCost comm_;
  std::vector<double> speed_;  ///< per stage: its slowest GPU's speed
  const double act_bytes_;     ///< one micro-batch's activations at a layer boundary (bf16)
  const double kv_bytes_;      ///< CP: one rank's K and V blocks
  const int v_, m_count_;
  const bool gather_weights_;  ///< ZeRO-1/2's weight all-gather after the optimizer
  StepResult r_;
  PassCost head_;
  std::map<bool, PassCost> layer_costs_;  ///< by whether the layer is MoE
  std::map<std::pair<int, int>, std::pair<double, double>> tp_overlaps_;  ///< (moe?, stage) -> (forward, backward)
  std::map<std::pair<int, int>, ChunkCost> chunk_costs_;  ///< by (chunk, stage)
  double flops_model_ = 0, flops_hw_ = 0;
  std::vector<double> hbm_;  ///< bytes one GPU of each stage reads and writes
  // The task graph: per stage a compute stream (2s) and a data-parallel stream (2s + 1).
  std::vector<Task> tasks_;
  Deps deps_;
  std::vector<Chain> chains_;
  std::vector<std::vector<int>> streams_;
  std::vector<std::pair<std::string, std::string>> labels_;  ///< by task id, only for a timeline
  std::map<std::size_t, std::vector<std::string>> chain_labels_;  ///< by chain task id: each link's
  std::vector<std::vector<int>> f_id_, b_id_, w_id_;  ///< task ids of F, B and W by (virtual stage, micro-batch)
  std::vector<int> last_backward_;  ///< by virtual stage: its last pass that makes gradients
  std::vector<std::vector<int>> dp_tasks_;  ///< per stage: its data-parallel stream's tasks
  std::vector<int> early_gather_;  ///< per stage: the overlapped weight gather's task
  std::vector<int> embedding_sync_;  ///< per stage: its embedding all-reduce's task
};

}  // namespace

StepResult composed_step(const Scenario& sc, const Plan& p, const topology::Topology& t, const StepOptions& o,
                         Watts reserve) {
  return ComposedStep(sc, p, t, o, reserve).run();
}

}  // namespace wallsim::engine
