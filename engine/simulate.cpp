#include "engine/simulate.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <tuple>
#include <unordered_map>

#include "collectives/flow_solver.hpp"
#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "parallelism/step_program.hpp"

namespace wallsim::engine {
namespace {

using parallelism::ProgramOp;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::uint32_t kNone = ~std::uint32_t{0};

struct OpState {
  std::uint32_t deps_left = 0;
  std::vector<std::uint32_t> dependents;  // ops of the same rank waiting on this one
  bool started = false, done = false;
  std::uint32_t sms = 0;  // a data-parallel collective's: the SMs its kernel holds while it runs
  double start = 0.0, end = 0.0;
};

struct RankState {
  std::vector<OpState> ops;
  std::array<std::vector<std::uint32_t>, parallelism::kStreams> streams;  // op indices in order
  std::array<std::size_t, parallelism::kStreams> head{};
  bool sms_busy = false;  // a kernel of one of the two compute streams runs
  int comm_on_sms = 0;    // collectives posted and not done on the compute or side streams
  std::uint32_t dp_sms = 0;  // SMs the data-parallel streams' collectives in flight hold
  // By stream: the compute run in flight (its first op heads the stream): its ops and the
  // sequence number of its timer (an older timer of the stream is stale).
  std::array<std::uint32_t, parallelism::kStreams> run_n{};
  std::array<std::uint64_t, parallelism::kStreams> run_seq{};
};

/// Streams of the data-parallel collectives (gradient buckets, ZeRO's gathers), whose NCCL
/// kernels hold SimulateOptions::dp_sms SMs beside the compute.
constexpr bool data_parallel(parallelism::StreamKind s) {
  return s == parallelism::StreamKind::kDataParallel || s == parallelism::StreamKind::kParamGather;
}

/// Streams whose collectives' kernels take SMs from the compute beside them.
constexpr bool comm_takes_sms(parallelism::StreamKind s) {
  return parallelism::holds_sms(s) || s == parallelism::StreamKind::kSide;
}

struct Transfer {
  topology::NodeId src = 0, dst = 0;
  double bytes = 0.0;
  std::uint32_t deps_left = 0;
  std::vector<std::uint32_t> dependents;
  std::uint32_t instance = kNone;  // a collective's, or kNone for a send
  std::uint32_t src_member = 0, dst_member = 0;
  std::uint32_t pair = kNone;
  std::uint32_t send_class = 0, recv_class = 0;
  std::uint32_t route = kNone;  // routes_ index (kNone: not yet routed)
  double share = 1.0;  // analytic: transfers of its step sharing its busiest endpoint port
};

struct Template;

/// A collective in flight, run once for its group class (`group`, the class's first group):
/// per rank class among the members, its op and the transfers of its members not yet done.
struct Instance {
  struct Entry {
    std::uint32_t cls = 0, op = kNone, left = 0;
  };
  std::vector<Entry> entries;          // by class, in the order the members first name them
  std::vector<std::uint32_t> entry_of;  // by member position
  std::uint32_t group = 0;
  std::uint32_t posted = 0;
  std::vector<Transfer> transfers;  // while any is not done (dependents: indices in it)
  std::uint32_t transfers_left = 0;
  const Template* tpl = nullptr;
};

/// A send and its receive (of the sender's class and the receiver's).
struct Pair {
  std::uint32_t send_op = kNone, recv_op = kNone;
  std::uint32_t route = kNone;  // the sender's rank and peer: routes of every copy
  Transfer transfer;
};

/// The routes of a transfer's copies (a group class's groups, or a class's senders, or the
/// several member pairs of a merged transfer): one flow crossing every copy's links (each
/// link once in `links`, `times` over), the first copy's cost, and how many copies leave
/// their scale-up domain.
struct Route {
  topology::Path links;
  std::vector<std::uint32_t> times;
  topology::Topology::PathCost first;
  double copies = 0, copies_out = 0;
  /// Flows per copy (SimulateOptions::flows_per_connection): the flow moves a transfer's bytes
  /// / split on each of its routes, every copy's routes named that many times over.
  double split = 1;
  /// What the solver is given (flow model): one link of each part of `links` (Engine::
  /// reduce_links), with its count.
  topology::Path solver_links;
  std::vector<std::uint32_t> solver_times;
};

/// A collective's transfers with their dependencies, by member position, built once per
/// group class, op, size and algorithm and instantiated at every launch.
struct Template {
  std::vector<Transfer> transfers;   // dependents are template indices
  std::vector<std::uint32_t> left;   // transfers per member
  std::vector<std::uint32_t> ready;  // transfers with no dependency
  /// By transfer, when merged: the members it moves data of (else its two ends).
  std::vector<std::vector<std::uint32_t>> touches;
};


struct Timer {
  double at;
  std::uint64_t seq;
  bool is_op;  // else a transfer
  std::uint32_t a, b;
  std::uint32_t n = 1;  // compute ops: the run of n ops of one stream that ends here
  bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

class Engine {
 public:
  Engine(const parallelism::Program& p, const topology::Topology& t, const SimulateOptions& o)
      : p_(p), t_(t), o_(o), solver_(t, o.reserved_Bps, o.exchange),
        cls_(o.classes ? classify(p, t, o.speed, {o.flow, o.flows_per_connection, o.reserved_Bps, o.background, o.classes_max_ops}) : every_rank(p)) {
    const std::size_t n = cls_.count();
    ranks_.resize(n);
    compute_.assign(n, 0.0);
    up_sent_.assign(n, 0.0);
    out_sent_.assign(n, 0.0);
    members_.resize(n);
    for (std::uint32_t r = 0; r < p.ranks.size(); ++r) members_[cls_.of[r]].push_back(r);
    std::size_t held = 0;
    for (std::uint32_t c = 0; c < n; ++c) {
      const auto& ops = ops_of(c);
      held += ops.size();
      if (held > parallelism::kMaxProgramOps) {
        throw Error("training.global_batch", "the ranks simulated hold more than " + std::to_string(parallelism::kMaxProgramOps) +
                                                 " ops, the most the event engine holds (fewer micro-batches or GPUs)");
      }
      RankState& rs = ranks_[c];
      rs.ops.resize(ops.size());
      for (std::uint32_t i = 0; i < ops.size(); ++i) {
        for (auto d : ops[i].deps) {
          // A dependency on a later op of another stream is kept (an overlapped pair's two
          // streams are ordered after both are built); on its own stream it could never run.
          if (d >= ops.size() || d == i || (d > i && ops[d].stream == ops[i].stream)) {
            throw Error(where(c, i), "depends on op " + std::to_string(d) + ", which does not come before it on its stream");
          }
          rs.ops[d].dependents.push_back(i);
        }
        rs.ops[i].deps_left = static_cast<std::uint32_t>(ops[i].deps.size());
        rs.streams[static_cast<std::size_t>(ops[i].stream)].push_back(i);
      }
    }
  }

  ProgramResult run() {
    if (o_.flow) {
      plan_routes();
      reduce_links();
    }
    if (o_.flow && (o_.exchange == nullptr || o_.exchange->rank() == 0)) {  // rank 0 holds the background
      for (const auto& f : background_) {
        const auto id = solver_.add(f);
        if (seq_of_flow_.size() <= id) seq_of_flow_.resize(id + 1, kBackgroundSeq);
        seq_of_flow_[id] = kBackgroundSeq;
      }
    }
    for (std::uint32_t c = 0; c < ranks_.size(); ++c) try_start(c);
    while (true) {
      const double t_timer = timers_.empty() ? kInf : timers_.top().at;
      const double t_flow = o_.flow ? solver_.next_event().value() : kInf;
      if (t_timer == kInf && t_flow == kInf) break;
      if (t_timer <= t_flow) {
        now_ = t_timer;
        while (!timers_.empty() && timers_.top().at <= now_) {
          const Timer e = timers_.top();
          timers_.pop();
          if (e.is_op) {
            const auto st = static_cast<std::size_t>(op(e.a, e.b).stream);
            if (ranks_[e.a].run_seq[st] != e.seq) continue;  // a run retime() moved
            finish_run(e.a, e.b, e.n);
          } else {
            finish_transfer({e.a, e.b});
          }
        }
      } else {
        now_ = t_flow;
        // The flows that finished, on every rank, taken in the order they were started (so
        // any number of MPI ranks runs the same program events in the same order).
        finished_.clear();
        for (auto id : solver_.advance_to(Seconds::of(t_flow))) {
          finished_.push_back(seq_of_flow_[id]);
          if (seq_of_flow_[id] != kBackgroundSeq) solver_.release(id);
        }
        gather_finished();
        std::sort(finished_.begin(), finished_.end());
        for (auto seq : finished_) {  // finishing may start flows
          if (seq == kBackgroundSeq) {  // background traffic
            background_end_ = now_;
            continue;
          }
          const auto it = flowing_.find(seq);
          const Ref x = it->second;
          flowing_.erase(it);
          finish_transfer(x);
        }
      }
    }
    ProgramResult res;
    res.ops.resize(ranks_.size());
    res.compute.resize(ranks_.size());
    double makespan = 0.0;
    for (std::uint32_t c = 0; c < ranks_.size(); ++c) {
      res.ops[c].reserve(ranks_[c].ops.size());
      for (std::uint32_t i = 0; i < ranks_[c].ops.size(); ++i) {
        const OpState& s = ranks_[c].ops[i];
        if (!s.done) throw Error(where(c, i), never_ran(c, i));
        res.ops[c].push_back({Seconds::of(s.start), Seconds::of(s.end)});
        makespan = std::max(makespan, s.end);
      }
      res.compute[c] = Seconds::of(compute_[c]);
    }
    res.makespan = Seconds::of(makespan);
    res.transfers = started_transfers_;
    for (std::size_t c = 0; c < ranks_.size(); ++c) {
      res.scale_up_sent.push_back(Bytes::of(up_sent_[c]));
      res.scale_out_sent.push_back(Bytes::of(out_sent_[c]));
    }
    res.flow = solver_.stats();
    res.link_bytes = std::move(link_bytes_);
    res.background_end = Seconds::of(background_end_);
    res.classes = std::move(cls_);
    return res;
  }

 private:
  /// Class `c`'s ops: those of the rank simulated for it.
  [[nodiscard]] const std::vector<ProgramOp>& ops_of(std::uint32_t c) const { return p_.ops_of(cls_.rep[c]); }
  [[nodiscard]] const ProgramOp& op(std::uint32_t c, std::uint32_t i) const { return ops_of(c)[i]; }

  [[nodiscard]] std::string where(std::uint32_t c, std::uint32_t i) const {
    const auto& x = op(c, i);
    return "rank " + std::to_string(cls_.rep[c]) + " op " + std::to_string(i) + (x.name.empty() ? "" : " (" + x.name + ")");
  }
  [[nodiscard]] std::string never_ran(std::uint32_t c, std::uint32_t i) const {
    const OpState& s = ranks_[c].ops[i];
    if (s.started && op(c, i).kind == ProgramOp::Kind::kCollective) return "never ends: a member of its group never reaches it";
    if (s.started) return "never ends: its peer never posts the matching send or receive";
    return "never starts: it waits on an op that never ends";
  }

  /// Receives are posted in order, each without waiting for the one before to complete (an
  /// irecv): their stream moves on when one is posted, not when it ends. Any order of sends
  /// then matches (Megatron batches each step's isend/irecv, which NCCL progresses in any order).
  static bool posts_only(std::size_t stream) {
    return stream == static_cast<std::size_t>(parallelism::StreamKind::kPipelineRecv);
  }

  void try_start(std::uint32_t c) {
    RankState& rs = ranks_[c];
    // The data-parallel streams first: a collective posted at the instant a kernel starts is
    // beside that kernel (its SMs are taken when the kernel's blocks are placed).
    using parallelism::StreamKind;
    static constexpr std::array<StreamKind, parallelism::kStreams> kOrder = {
        StreamKind::kDataParallel, StreamKind::kParamGather,  StreamKind::kCompute,     StreamKind::kSide,
        StreamKind::kPipelineSend, StreamKind::kPipelineRecv, StreamKind::kCompute2};
    static_assert(
        [] {
          std::array<bool, parallelism::kStreams> seen{};
          for (const StreamKind k : kOrder) seen[static_cast<std::size_t>(k)] = true;
          for (const bool b : seen) {
            if (!b) return false;
          }
          return true;
        }(),
        "kOrder visits every stream once");
    for (const StreamKind sk : kOrder) {
      const auto s = static_cast<std::size_t>(sk);
      while (rs.head[s] < rs.streams[s].size()) {
        const std::uint32_t i = rs.streams[s][rs.head[s]];
        if (rs.ops[i].started || rs.ops[i].deps_left != 0) break;
        // The two compute streams run one kernel at a time between them.
        if (rs.sms_busy && op(c, i).kind == ProgramOp::Kind::kCompute && parallelism::holds_sms(op(c, i).stream)) break;
        start_op(c, i);
        if (!posts_only(s)) break;
        ++rs.head[s];
      }
    }
  }

  void start_op(std::uint32_t c, std::uint32_t i) {
    OpState& s = ranks_[c].ops[i];
    const ProgramOp& x = op(c, i);
    s.started = true;
    s.start = now_;
    switch (x.kind) {
      case ProgramOp::Kind::kCompute: {
        // The op and the compute ops right behind it on its stream that wait for nothing else
        // run back to back: one timer for the run (none of them but the last has dependents,
        // so no one needs to hear of the others' ends at their time).
        RankState& rs = ranks_[c];
        const auto stream = static_cast<std::size_t>(x.stream);
        double end = now_ + compute_time(c, i);
        s.end = end;
        if (parallelism::holds_sms(x.stream)) rs.sms_busy = true;
        // While the other compute stream has work, its kernels may take the SMs between these.
        const auto c1 = static_cast<std::size_t>(parallelism::StreamKind::kCompute);
        const auto c2 = static_cast<std::size_t>(parallelism::StreamKind::kCompute2);
        const std::size_t other = stream == c1 ? c2 : c1;
        const bool alone = !parallelism::holds_sms(x.stream) || rs.head[other] >= rs.streams[other].size();
        std::uint32_t n = 1, last = i;
        for (std::size_t pos = rs.head[stream] + 1; alone && pos < rs.streams[stream].size() && rs.ops[last].dependents.empty(); ++pos) {
          const std::uint32_t k = rs.streams[stream][pos];
          OpState& next = rs.ops[k];
          if (op(c, k).kind != ProgramOp::Kind::kCompute || next.deps_left != 0 || next.started) break;
          next.started = true;
          next.start = end;
          end += compute_time(c, k);
          next.end = end;
          last = k;
          ++n;
        }
        rs.run_n[stream] = n;
        rs.run_seq[stream] = seq_;
        timers_.push({end, seq_++, true, c, i, n});
        break;
      }
      case ProgramOp::Kind::kCollective:
        if (comm_takes_sms(x.stream)) ++ranks_[c].comm_on_sms;
        if (data_parallel(x.stream)) {
          s.sms = sms_of(p_.group_of(cls_.rep[c], x));
          ranks_[c].dp_sms += s.sms;
          if (s.sms > 0) retime(c);
        }
        post_collective(c, i, x);
        break;
      case ProgramOp::Kind::kSend:
      case ProgramOp::Kind::kRecv: post_p2p(c, i, x); break;
    }
  }

  /// One compute op's time, counted in the class's compute.
  double compute_time(std::uint32_t c, std::uint32_t i) {
    const ProgramOp& x = op(c, i);
    double d = x.duration.value();
    if (d <= 0.0) {
      if (!o_.compute_time) throw Error(where(c, i), "a compute op without a duration needs a compute-time model");
      const RankState& rs = ranks_[c];
      // A pair's kernel with no all-to-all beside it has every SM (but what the data-parallel
      // collectives in flight hold); a kernel beside those runs on what they leave.
      const bool whole = x.kernel.sms_while_comm && x.kernel.sms_taken > 0 && rs.comm_on_sms == 0;
      const std::uint32_t dp = parallelism::holds_sms(x.stream) ? rs.dp_sms : 0;
      if (whole || dp > 0) {
        scratch_ = x;
        if (whole) scratch_.kernel.sms_taken = 0;
        scratch_.kernel.sms_taken += static_cast<int>(dp);
        d = x.count * o_.compute_time(scratch_, cls_.rep[c]).value();
      } else {
        d = x.count * o_.compute_time(x, cls_.rep[c]).value();
      }
    }
    if (!(d >= 0.0) || !std::isfinite(d)) throw Error(where(c, i), "compute time is not a finite, non-negative number");
    compute_[c] += d;
    return d;
  }

  /// The SMs the data-parallel collectives hold changed: the kernels of the compute runs in
  /// flight that have not begun get the share of their start (the one running keeps its own),
  /// and the run's timer moves to its new end.
  void retime(std::uint32_t c) {
    RankState& rs = ranks_[c];
    for (const auto sk : {parallelism::StreamKind::kCompute, parallelism::StreamKind::kCompute2}) {
      const auto st = static_cast<std::size_t>(sk);
      const std::uint32_t n = rs.run_n[st];
      if (n == 0 || rs.head[st] + n > rs.streams[st].size()) continue;
      double end = 0.0;
      bool moved = false;
      for (std::uint32_t j = 0; j < n; ++j) {
        const std::uint32_t k = rs.streams[st][rs.head[st] + j];
        OpState& o = rs.ops[k];
        if (!moved && o.start < now_) continue;
        if (!moved) end = o.start;
        moved = true;
        compute_[c] -= o.end - o.start;
        o.start = end;
        end += compute_time(c, k);
        o.end = end;
      }
      if (!moved) continue;
      rs.run_seq[st] = seq_;
      timers_.push({end, seq_++, true, c, rs.streams[st][rs.head[st]], n});
    }
  }

  void finish_op(std::uint32_t c, std::uint32_t i) {
    ranks_[c].ops[i].end = now_;
    finish_run(c, i, 1);
  }

  /// Ends op `i` and the n - 1 ops behind it on its stream (their ends were set when they
  /// started as one run).
  void finish_run(std::uint32_t c, std::uint32_t i, std::uint32_t n) {
    RankState& rs = ranks_[c];
    const auto stream = static_cast<std::size_t>(op(c, i).stream);
    if (op(c, i).kind == ProgramOp::Kind::kCollective && comm_takes_sms(op(c, i).stream)) --rs.comm_on_sms;
    if (rs.ops[i].sms > 0) {
      rs.dp_sms -= rs.ops[i].sms;
      rs.ops[i].sms = 0;
      retime(c);
    }
    if (posts_only(stream)) {  // already past its stream's head
      OpState& s = rs.ops[i];
      s.done = true;
      for (auto d : s.dependents) --rs.ops[d].deps_left;
      try_start(c);
      return;
    }
    if (parallelism::holds_sms(op(c, i).stream) && op(c, i).kind == ProgramOp::Kind::kCompute) rs.sms_busy = false;
    if (op(c, i).kind == ProgramOp::Kind::kCompute) rs.run_n[stream] = 0;
    for (std::uint32_t j = 0; j < n; ++j) {
      OpState& s = rs.ops[rs.streams[stream][rs.head[stream]]];
      s.done = true;
      ++rs.head[stream];
      for (auto d : s.dependents) --rs.ops[d].deps_left;
    }
    try_start(c);
  }

  // ---- collectives -----------------------------------------------------------------------

  void post_collective(std::uint32_t c, std::uint32_t i, const ProgramOp& x) {
    const std::uint32_t r = cls_.rep[c];
    const std::uint32_t g = p_.group_of(r, x);
    if (g >= p_.groups.size()) throw Error(where(c, i), "group " + std::to_string(g) + " does not exist");
    const auto& members = p_.groups[g];
    if (std::find(members.begin(), members.end(), r) == members.end()) {
      throw Error(where(c, i), "rank " + std::to_string(r) + " is not in group " + std::to_string(g));
    }
    const std::uint32_t rg = cls_.group_rep[g];
    auto [it, fresh] = instance_of_.try_emplace({rg, x.collective}, static_cast<std::uint32_t>(instances_.size()));
    if (fresh) {
      instances_.emplace_back();
      Instance& in = instances_.back();
      in.group = rg;
      for (auto m : p_.groups[rg]) {
        const std::uint32_t mc = cls_.of[m];
        std::uint32_t e = 0;
        while (e < in.entries.size() && in.entries[e].cls != mc) ++e;
        if (e == in.entries.size()) in.entries.push_back({mc, kNone, 0});
        in.entry_of.push_back(e);
      }
    }
    Instance& in = instances_[it->second];
    auto e = std::find_if(in.entries.begin(), in.entries.end(), [c](const Instance::Entry& y) { return y.cls == c; });
    if (e == in.entries.end()) throw std::logic_error("simulate: a rank class posts a collective of a group class it is not in");
    if (e->op != kNone) throw Error(where(c, i), "reaches its group's collective " + std::to_string(x.collective) + " twice");
    e->op = i;
    if (++in.posted == in.entries.size()) launch(it->second, x);
  }

  /// Every member is there: the algorithm's steps become transfers, each waiting for what
  /// its sender received in the step before and for its sender's own previous send.
  void launch(std::uint32_t id, const ProgramOp& x) {
    const std::uint32_t g = instances_[id].group;
    const Template& tpl = template_of(g, x);
    Instance& in = instances_[id];
    in.tpl = &tpl;
    in.transfers = tpl.transfers;
    in.transfers_left = static_cast<std::uint32_t>(tpl.transfers.size());
    for (auto& tr : in.transfers) tr.instance = id;
    for (std::size_t m = 0; m < tpl.left.size(); ++m) in.entries[in.entry_of[m]].left += tpl.left[m];
    for (std::size_t e = 0; e < instances_[id].entries.size(); ++e) {
      const auto entry = instances_[id].entries[e];
      if (entry.left == 0) finish_op(entry.cls, entry.op);
    }
    for (auto y : tpl.ready) start_transfer({id, y});
  }

  const Template& template_of(std::uint32_t group, const ProgramOp& x) {
    const auto key = std::tuple{group, static_cast<int>(x.op), x.bytes.value(), x.tuned ? -1 : static_cast<int>(x.algo), x.rail_share};
    if (const auto it = templates_.find(key); it != templates_.end()) return it->second;
    const auto& g = p_.groups[group];
    std::vector<topology::NodeId> gpus;
    std::unordered_map<topology::NodeId, std::uint32_t> member;
    for (std::uint32_t m = 0; m < g.size(); ++m) {
      gpus.push_back(p_.ranks[g[m]].gpu);
      if (!member.emplace(gpus.back(), m).second) {
        throw Error("group " + std::to_string(group), "two ranks on one GPU in a collective");
      }
    }
    std::string why;
    std::optional<collectives::Schedule> s;
    if (x.tuned) {
      // NCCL's tuner: the fastest valid algorithm by alpha-beta.
      s = collectives::choose_schedule(t_, x.op, gpus, x.bytes, {}, {}, std::nullopt, *analytic_).schedule;
    } else {
      collectives::CollectiveOptions opt;
      opt.rail_share = x.rail_share;
      s = collectives::build_schedule(t_, x.op, x.algo, gpus, x.bytes, opt, &why);
    }
    if (!s) throw Error("group " + std::to_string(group), to_string(x.algo) + " cannot run " + to_string(x.op) + ": " + why);
    if (x.op == collectives::Op::kAllToAll) {
      // NCCL runs an all-to-all as one group of sends and receives: every pair's transfer at
      // once (its proxy spreads the peers over channels), not the rotation's steps in turn.
      collectives::Phase all;
      for (const auto& ph : s->phases) {
        for (double k = 0; k < ph.repeat; ++k) ph.for_each([&](const collectives::Transfer& y) { all.transfers.push_back(y); });
      }
      s->phases.assign(1, std::move(all));
    }
    Template tpl;
    std::vector<std::uint32_t> step_of;  // by transfer: its step
    tpl.left.assign(g.size(), 0);
    auto& tt = tpl.transfers;
    std::vector<std::vector<std::uint32_t>> prev_in(g.size()), prev_out(g.size()), in(g.size()), out(g.size());
    std::uint32_t steps = 0;
    for (const auto& ph : s->phases) {
      const double reps = ph.repeat;
      if (reps != std::floor(reps) || reps < 0.0) throw std::logic_error("simulate: a schedule step repeats a fractional count");
      for (double k = 0; k < reps; ++k) {
        for (auto& v : in) v.clear();
        for (auto& v : out) v.clear();
        ph.for_each([&](const collectives::Transfer& y) {
          if (y.src == y.dst) return;
          const auto y_id = static_cast<std::uint32_t>(tt.size());
          Transfer tr;
          tr.src = y.src;
          tr.dst = y.dst;
          tr.bytes = y.bytes.value();
          tr.src_member = member.at(y.src);
          tr.dst_member = member.at(y.dst);
          step_of.push_back(steps);
          for (auto d : prev_in[tr.src_member]) tt[d].dependents.push_back(y_id);
          for (auto d : prev_out[tr.src_member]) tt[d].dependents.push_back(y_id);
          tr.deps_left = static_cast<std::uint32_t>(prev_in[tr.src_member].size() + prev_out[tr.src_member].size());
          ++tpl.left[tr.src_member];
          ++tpl.left[tr.dst_member];
          in[tr.dst_member].push_back(y_id);
          out[tr.src_member].push_back(y_id);
          if (tr.deps_left == 0) tpl.ready.push_back(y_id);
          tt.push_back(std::move(tr));
        });
        ++steps;
        share_ports(tt, out, in, g.size());
        // A member with nothing to do in a step keeps what it had for the next one.
        for (std::size_t m = 0; m < g.size(); ++m) {
          if (!in[m].empty() || !out[m].empty()) {
            prev_in[m].swap(in[m]);
            prev_out[m].swap(out[m]);
          }
        }
      }
    }
    merge_transfers(tpl, group, step_of);
    return templates_.emplace(key, std::move(tpl)).first->second;
  }

  /// The transfers of one step of a template with the same sender and receiver classes,
  /// bytes, port share and route cost become one transfer whose route is all of theirs (in
  /// every copy of the group): they would move at one rate as max-min gives equal shares to
  /// equal flows, unless routes collide unevenly (then all move at the collided one's rate).
  /// It waits for every transfer its parts waited for: a ring's step already waits, through
  /// each member's own previous send, for the slowest of the step before.
  void merge_transfers(Template& tpl, std::uint32_t group, const std::vector<std::uint32_t>& step_of) {
    const auto& g = p_.groups[group];
    const std::size_t n = tpl.transfers.size();
    std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, double, double, double, double>, std::uint32_t> like;
    std::vector<std::uint32_t> like_of(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Transfer& tr = tpl.transfers[i];
      t_.route_into(tr.src, tr.dst, route_key(group, tr.src, tr.dst), path_);
      const auto cost = t_.path_cost(path_);
      const auto key = std::tuple{step_of[i], cls_.of[g[tr.src_member]], cls_.of[g[tr.dst_member]], cost.latency.value(),
                                  cost.bandwidth.value(), tr.share, tr.bytes};
      like_of[i] = like.try_emplace(key, static_cast<std::uint32_t>(like.size())).first->second;
    }
    // A step that waits on others (a ring's, halving-doubling's) is merged apart by crowding; a
    // template of one step (an all-to-all, NVLS) moves as one (its op ends with its slowest).
    const bool one_step = std::all_of(step_of.begin(), step_of.end(), [](std::uint32_t k) { return k == 0; });
    const std::vector<std::uint32_t> crowd =
        one_step ? std::vector<std::uint32_t>(n, 0) : crowding(tpl, group, like_of, static_cast<std::uint32_t>(like.size()));
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> slot;
    std::vector<Transfer> merged;
    std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> pairs;
    std::vector<std::uint32_t> into(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Transfer& tr = tpl.transfers[i];
      const auto [it, fresh] = slot.try_emplace({like_of[i], crowd[i]}, static_cast<std::uint32_t>(merged.size()));
      if (fresh) {
        merged.push_back(tr);
        merged.back().dependents.clear();
        merged.back().deps_left = 0;
        pairs.emplace_back();
      }
      into[i] = it->second;
      pairs[it->second].emplace_back(tr.src_member, tr.dst_member);
    }
    for (std::size_t i = 0; i < tpl.transfers.size(); ++i) {
      for (auto d : tpl.transfers[i].dependents) merged[into[i]].dependents.push_back(into[d]);
    }
    for (auto& m : merged) {
      std::sort(m.dependents.begin(), m.dependents.end());
      m.dependents.erase(std::unique(m.dependents.begin(), m.dependents.end()), m.dependents.end());
      for (auto d : m.dependents) ++merged[d].deps_left;
    }
    tpl.left.assign(g.size(), 0);
    tpl.ready.clear();
    tpl.touches.assign(merged.size(), {});
    for (std::uint32_t j = 0; j < merged.size(); ++j) {
      auto& touch = tpl.touches[j];
      for (const auto& [a, b] : pairs[j]) {
        touch.push_back(a);
        touch.push_back(b);
      }
      std::sort(touch.begin(), touch.end());
      touch.erase(std::unique(touch.begin(), touch.end()), touch.end());
      for (auto m : touch) ++tpl.left[m];
      merged[j].route = merged_route(group, std::move(pairs[j]));
      if (merged[j].deps_left == 0) tpl.ready.push_back(j);
    }
    tpl.transfers = std::move(merged);
  }

  /// Under `flow`, by transfer of `tpl`: the most times the routes of the transfers alike to it
  /// (`like_of`, in every copy of the group) cross one link of its own route (0 under
  /// `analytic`). ECMP can hash two of them onto one link; those then move slower than the
  /// rest, so they are merged apart from the ones that cross no such link.
  std::vector<std::uint32_t> crowding(const Template& tpl, std::uint32_t group, const std::vector<std::uint32_t>& like_of,
                                      std::uint32_t likes) {
    const std::size_t n = tpl.transfers.size();
    std::vector<std::uint32_t> out(n, 0);
    if (!o_.flow) return out;
    std::vector<topology::Path> routes(n);
    for (std::size_t i = 0; i < n; ++i) {
      Route r;
      add_pair(r, group, tpl.transfers[i].src_member, tpl.transfers[i].dst_member);
      routes[i] = std::move(r.links);
    }
    if (count_.size() < t_.num_links()) count_.assign(t_.num_links(), 0);
    std::vector<std::vector<std::uint32_t>> members(likes);
    for (std::size_t i = 0; i < n; ++i) members[like_of[i]].push_back(static_cast<std::uint32_t>(i));
    for (const auto& m : members) {
      for (auto i : m) {
        for (auto l : routes[i]) ++count_[l];
      }
      for (auto i : m) {
        for (auto l : routes[i]) out[i] = std::max(out[i], count_[l]);
      }
      for (auto i : m) {
        for (auto l : routes[i]) count_[l] = 0;
      }
    }
    return out;
  }

  /// The route of the transfers from member a to member b, for every (a, b) of `pairs`, in
  /// every group of group class `group` (a ring's steps share theirs).
  std::uint32_t merged_route(std::uint32_t group, std::vector<std::pair<std::uint32_t, std::uint32_t>>&& pairs) {
    std::sort(pairs.begin(), pairs.end());
    auto [it, fresh] = merged_routes_.try_emplace({group, std::move(pairs)}, static_cast<std::uint32_t>(routes_.size()));
    if (!fresh) return it->second;
    Route r;
    for (const auto& [a, b] : it->first.second) add_pair(r, group, a, b);
    return add_route(std::move(r));
  }

  /// Adds the transfer from member a to member b in every group of group class `group` to `r`.
  void add_pair(Route& r, std::uint32_t group, std::uint32_t a, std::uint32_t b) {
    for (auto copy : cls_.copies[group]) {
      const auto src = p_.ranks[p_.groups[copy][a]].gpu, dst = p_.ranks[p_.groups[copy][b]].gpu;
      add_copy(r, src, dst, route_key(copy, src, dst));
    }
  }

  /// Under `analytic`, the transfers of one step that leave or enter one endpoint share its
  /// link (as the analytic collective model has it): each is slowed by its busiest port's
  /// count, ports counted apart inside and across scale-up domains.
  void share_ports(std::vector<Transfer>& tt, const std::vector<std::vector<std::uint32_t>>& out,
                   const std::vector<std::vector<std::uint32_t>>& in, std::size_t members) {
    if (o_.flow) return;
    auto cross = [this](const Transfer& x) { return t_.leaves_domain(x.src, x.dst); };
    for (std::size_t m = 0; m < members; ++m) {
      for (const auto* list : {&out[m], &in[m]}) {
        double n_cross = 0.0, n_local = 0.0;
        for (auto x : *list) (cross(tt[x]) ? n_cross : n_local) += 1.0;
        for (auto x : *list) {
          Transfer& tr = tt[x];
          tr.share = std::max(tr.share, cross(tr) ? n_cross : n_local);
        }
      }
    }
  }

  // ---- routes ----------------------------------------------------------------------------

  /// `links` sorted, each once, and `times` (by position; empty: once each) summed to match.
  static void count_links(topology::Path& links, std::vector<std::uint32_t>& times) {
    std::vector<std::pair<topology::LinkId, std::uint32_t>> v;
    v.reserve(links.size());
    for (std::size_t j = 0; j < links.size(); ++j) v.emplace_back(links[j], times.empty() ? 1u : times[j]);
    std::sort(v.begin(), v.end());
    links.clear();
    times.clear();
    for (const auto& [l, k] : v) {
      if (!links.empty() && links.back() == l) {
        times.back() += k;
      } else {
        links.push_back(l);
        times.push_back(k);
      }
    }
  }

  /// Keeps route `r` (its links sorted, each once with its count); returns its index.
  std::uint32_t add_route(Route&& r) {
    if (reduced_) throw std::logic_error("simulate: a route appeared after the links were partitioned");
    r.times.clear();
    count_links(r.links, r.times);
    routes_.push_back(std::move(r));
    return static_cast<std::uint32_t>(routes_.size() - 1);
  }

  /// Flow model: every route the program will take, before the first flow moves (the same
  /// memoized calls its launches and sends make later), so that reduce_links sees them all.
  void plan_routes() {
    for (std::uint32_t c = 0; c < ranks_.size(); ++c) {
      const std::uint32_t r = cls_.rep[c];
      const auto& ops = ops_of(c);
      for (std::uint32_t i = 0; i < ops.size(); ++i) {
        const ProgramOp& x = ops[i];
        if (x.kind == ProgramOp::Kind::kCollective) {
          // A bad group is reported where the op posts it, in program order.
          const std::uint32_t g = p_.group_of(r, x);
          if (g >= p_.groups.size()) continue;
          const auto& members = p_.groups[g];
          if (std::find(members.begin(), members.end(), r) == members.end()) continue;
          template_of(cls_.group_rep[g], x);
        } else if (x.kind == ProgramOp::Kind::kSend) {
          const std::uint32_t peer = p_.peer_of(r, x);
          if (peer < p_.ranks.size()) send_route(c, i, peer);
        }
      }
    }
  }

  /// Flow model: the links split into parts, each of one bandwidth (and reserve) crossed by
  /// the same routes (and background flows) the same number of times. The links of a part
  /// carry the same load at every instant, so they fill to the same level in the same
  /// operations and max-min needs one of them: each route hands the solver the first link of
  /// each part it crosses. Rates and finishes are those of every link to the last bit; what
  /// goes is the work of the copies of one transfer, whose private links (a GPU's port, its
  /// NIC's) all look alike.
  void reduce_links() {
    const std::size_t n_links = t_.num_links();
    std::vector<std::vector<std::uint64_t>> sig(n_links);
    const auto note = [&](std::uint64_t who, const topology::Path& links, const std::vector<std::uint32_t>& times) {
      for (std::size_t j = 0; j < links.size(); ++j) sig[links[j]].push_back(who << 32 | times[j]);
    };
    for (std::size_t r = 0; r < routes_.size(); ++r) note(r, routes_[r].links, routes_[r].times);
    background_.assign(o_.background.begin(), o_.background.end());
    for (std::size_t b = 0; b < background_.size(); ++b) {
      collectives::Flow& f = background_[b];
      if (!f.latency) f.latency = t_.path_latency(f.path);
      count_links(f.path, f.times);
      note(routes_.size() + b, f.path, f.times);
    }
    struct SigHash {
      std::size_t operator()(const std::vector<std::uint64_t>& v) const noexcept {
        std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the words
        for (auto w : v) h = (h ^ w) * 1099511628211ULL;
        return static_cast<std::size_t>(h);
      }
    };
    std::unordered_map<std::vector<std::uint64_t>, topology::LinkId, SigHash> part;
    std::vector<topology::LinkId> first(n_links);
    for (topology::LinkId l = 0; l < n_links; ++l) {
      first[l] = l;
      if (sig[l].empty()) continue;
      auto key = std::move(sig[l]);
      key.push_back(std::bit_cast<std::uint64_t>(t_.link(l).bandwidth.value()));
      key.push_back(std::bit_cast<std::uint64_t>(o_.reserved_Bps.empty() ? 0.0 : o_.reserved_Bps[l]));
      first[l] = part.try_emplace(std::move(key), l).first->second;
    }
    const auto keep = [&](const topology::Path& links, const std::vector<std::uint32_t>& times, topology::Path& out_links,
                          std::vector<std::uint32_t>& out_times) {
      topology::Path kl;
      std::vector<std::uint32_t> kt;
      for (std::size_t j = 0; j < links.size(); ++j) {
        if (first[links[j]] != links[j]) continue;
        kl.push_back(links[j]);
        kt.push_back(times[j]);
      }
      out_links = std::move(kl);
      out_times = std::move(kt);
    };
    for (auto& r : routes_) keep(r.links, r.times, r.solver_links, r.solver_times);
    for (auto& f : background_) keep(f.path, f.times, f.path, f.times);
    reduced_ = true;
  }

  /// Adds the route from `src` to `dst` (route key `key`) as one copy of route `r`: as
  /// flows_per_connection flows, each on its own hashed route when the copy leaves its scale-up
  /// domain (inside one, the same route that many times: one flow at that many times the rate).
  void add_copy(Route& r, topology::NodeId src, topology::NodeId dst, std::uint64_t key) {
    if (src == dst) return;
    const std::uint32_t q = std::max<std::uint32_t>(1, o_.flows_per_connection);
    t_.route_into(src, dst, key, path_);
    if (r.copies == 0) r.first = t_.path_cost(path_);
    r.split = q;
    r.links.insert(r.links.end(), path_.begin(), path_.end());
    r.copies += 1;
    const bool out = t_.leaves_domain(src, dst);
    if (out) r.copies_out += 1;
    for (std::uint32_t j = 1; j < q; ++j) {
      if (out) t_.route_into(src, dst, collectives::flow_key(key, j), path_);
      r.links.insert(r.links.end(), path_.begin(), path_.end());
    }
  }

  /// The routes of op `i`'s send from every rank of class `c` to its peer.
  std::uint32_t send_route(std::uint32_t c, std::uint32_t i, std::uint32_t peer) {
    auto [it, fresh] = send_routes_.try_emplace({c, peer}, static_cast<std::uint32_t>(routes_.size()));
    if (!fresh) return it->second;
    Route r;
    for (auto rank : members_[c]) {
      const std::uint32_t q = p_.peer_of(rank, p_.ops_of(rank)[i]);
      if (q >= p_.ranks.size()) throw Error(where(c, i), "peer rank " + std::to_string(q) + " does not exist");
      const auto src = p_.ranks[rank].gpu, dst = p_.ranks[q].gpu;
      add_copy(r, src, dst, route_key(kP2pKey, src, dst));
    }
    add_route(std::move(r));
    return it->second;
  }

  // ---- point to point --------------------------------------------------------------------

  void post_p2p(std::uint32_t c, std::uint32_t i, const ProgramOp& x) {
    const std::uint32_t peer = p_.peer_of(cls_.rep[c], x);
    if (peer >= p_.ranks.size()) throw Error(where(c, i), "peer rank " + std::to_string(peer) + " does not exist");
    const bool send = x.kind == ProgramOp::Kind::kSend;
    const std::uint32_t other = cls_.of[peer];
    const auto key = send ? std::tuple{c, other, x.tag} : std::tuple{other, c, x.tag};
    auto [it, fresh] = pair_of_.try_emplace(key, static_cast<std::uint32_t>(pairs_.size()));
    if (fresh) pairs_.emplace_back();
    Pair& pr = pairs_[it->second];
    std::uint32_t& mine = send ? pr.send_op : pr.recv_op;
    if (mine != kNone) throw Error(where(c, i), "a second op with the same peer and tag " + std::to_string(x.tag));
    mine = i;
    if (send) pr.route = send_route(c, i, peer);
    if (pr.send_op == kNone || pr.recv_op == kNone) return;
    const std::uint32_t sender = send ? c : other, receiver = send ? other : c;
    const std::uint32_t route = pr.route;
    Transfer& tr = pr.transfer;
    tr.src = p_.ranks[cls_.rep[sender]].gpu;
    tr.dst = p_.ranks[p_.peer_of(cls_.rep[sender], op(sender, pr.send_op))].gpu;
    tr.bytes = op(sender, pr.send_op).bytes.value();
    tr.pair = it->second;
    tr.send_class = sender;
    tr.recv_class = receiver;
    tr.route = route;
    tr.src_member = sender;
    start_transfer({kNone, it->second});
  }

  // ---- transfers -------------------------------------------------------------------------

  /// Every rank's finished flows (their numbers) on every rank, under MPI.
  void gather_finished() {
    const collectives::FlowExchange* ex = o_.exchange;
    if (ex == nullptr || ex->ranks() == 1) return;
    std::vector<double> counts(static_cast<std::size_t>(ex->ranks()), 0.0);
    counts[static_cast<std::size_t>(ex->rank())] = static_cast<double>(finished_.size());
    ex->sum(counts);
    std::size_t offset = 0, total = 0;
    for (int r = 0; r < ex->ranks(); ++r) {
      if (r < ex->rank()) offset += static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
      total += static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
    }
    // Numbers below 2^53 and the background's mark travel exactly as doubles (-1: background).
    std::vector<double> all(total, 0.0);
    for (std::size_t i = 0; i < finished_.size(); ++i) {
      all[offset + i] = finished_[i] == kBackgroundSeq ? -1.0 : static_cast<double>(finished_[i]);
    }
    ex->sum(all);
    finished_.clear();
    for (double x : all) finished_.push_back(x < 0.0 ? kBackgroundSeq : static_cast<std::uint64_t>(x));
  }

  /// A transfer: the index-th of a collective's instance, or a send's (instance kNone, index
  /// its pair).
  struct Ref {
    std::uint32_t instance, index;
  };
  Transfer& transfer(Ref x) {
    return x.instance == kNone ? pairs_[x.index].transfer : instances_[x.instance].transfers[x.index];
  }

  void start_transfer(Ref x) {
    ++started_transfers_;
    const Transfer& tr = transfer(x);
    const Route& route = routes_[tr.route];
    if (route.copies == 0) {  // a copy on one GPU
      timers_.push({now_, seq_++, false, x.instance, x.index});
      return;
    }
    const std::uint32_t sender = tr.instance == kNone ? tr.send_class
                                                      : cls_.of[p_.groups[instances_[tr.instance].group][tr.src_member]];
    out_sent_[sender] += tr.bytes * route.copies_out;
    up_sent_[sender] += tr.bytes * (route.copies - route.copies_out);
    if (o_.link_bytes) {  // every copy's route
      if (link_bytes_.empty()) link_bytes_.assign(t_.num_links(), 0.0);
      for (std::size_t j = 0; j < route.links.size(); ++j) link_bytes_[route.links[j]] += tr.bytes / route.split * route.times[j];
    }
    if (o_.flow) {
      // Under MPI every rank runs the program; each flow is held by one rank (by its number).
      const std::uint64_t seq = next_flow_++;
      flowing_.emplace(seq, x);
      if (o_.exchange == nullptr || seq % static_cast<std::uint64_t>(o_.exchange->ranks()) ==
                                        static_cast<std::uint64_t>(o_.exchange->rank())) {
        const auto id =
            solver_.add({route.solver_links, Bytes::of(tr.bytes / route.split), Seconds::of(now_) + o_.overhead, 1.0,
                         route.first.latency, route.solver_times});
        if (seq_of_flow_.size() <= id) seq_of_flow_.resize(id + 1, kBackgroundSeq);
        seq_of_flow_[id] = seq;
      }
    } else {
      timers_.push({now_ + o_.overhead.value() + route.first.latency.value() + tr.share * tr.bytes / route.first.bandwidth.value(),
                    seq_++, false, x.instance, x.index});
    }
  }

  void finish_transfer(Ref x) {
    // By index throughout: finishing an op may post the next collective, whose launch grows
    // instances_.
    if (x.instance == kNone) {
      const Pair& pr = pairs_[x.index];
      const auto sender = pr.transfer.send_class, receiver = pr.transfer.recv_class;
      const auto send_op = pr.send_op, recv_op = pr.recv_op;
      finish_op(sender, send_op);
      finish_op(receiver, recv_op);
      return;
    }
    const std::size_t deps = transfer(x).dependents.size();
    for (std::size_t k = 0; k < deps; ++k) {
      const Ref d{x.instance, transfer(x).dependents[k]};
      if (--transfer(d).deps_left == 0) start_transfer(d);
    }
    const Template& tpl = *instances_[x.instance].tpl;
    const std::uint32_t ends[2] = {transfer(x).src_member, transfer(x).dst_member};
    const std::span<const std::uint32_t> members = tpl.touches.empty() ? std::span<const std::uint32_t>(ends)
                                                                       : std::span<const std::uint32_t>(tpl.touches[x.index]);
    if (--instances_[x.instance].transfers_left == 0) std::vector<Transfer>().swap(instances_[x.instance].transfers);
    for (auto m : members) {
      auto& e = instances_[x.instance].entries[instances_[x.instance].entry_of[m]];
      if (--e.left == 0) finish_op(e.cls, e.op);
    }
  }

  /// The SMs a data-parallel collective of group `g` holds (SimulateOptions::dp_sms), asked
  /// once a group.
  std::uint32_t sms_of(std::uint32_t g) {
    if (!o_.dp_sms || g >= p_.groups.size()) return 0;  // post_collective reports a bad group
    if (dp_sms_.empty()) dp_sms_.assign(p_.groups.size(), kNone);
    if (dp_sms_[g] == kNone) dp_sms_[g] = o_.dp_sms(g);
    return dp_sms_[g];
  }

  const parallelism::Program& p_;
  const topology::Topology& t_;
  const SimulateOptions& o_;
  std::vector<std::uint32_t> dp_sms_;  // by group: SimulateOptions::dp_sms's answer (kNone: not asked yet)
  parallelism::ProgramOp scratch_;   // a compute op with the SMs left to it now
  collectives::FlowSolver solver_;
  RankClasses cls_;
  std::vector<std::vector<std::uint32_t>> members_;  // by class: its ranks
  std::vector<RankState> ranks_;                       // by class
  std::vector<double> compute_, up_sent_, out_sent_;  // by class
  std::vector<double> link_bytes_;  ///< per link, when asked for
  double background_end_ = 0.0;
  double now_ = 0.0;
  std::uint64_t seq_ = 0;
  std::size_t started_transfers_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> instance_of_;
  std::vector<Instance> instances_;
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, std::uint32_t> pair_of_;
  std::vector<Pair> pairs_;
  std::vector<Route> routes_;
  std::vector<std::uint32_t> count_;  // crowding's scratch: by link
  bool reduced_ = false;  // reduce_links has run: no route may appear
  std::vector<collectives::Flow> background_;  // SimulateOptions::background, on the reduced links
  std::map<std::pair<std::uint32_t, std::vector<std::pair<std::uint32_t, std::uint32_t>>>, std::uint32_t> merged_routes_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> send_routes_;
  static constexpr std::uint64_t kBackgroundSeq = ~std::uint64_t{0};
  std::uint64_t next_flow_ = 0;
  std::unordered_map<std::uint64_t, Ref> flowing_;  // flows in flight (on any rank), by number
  std::vector<std::uint64_t> seq_of_flow_;          // by this rank's solver id
  std::vector<std::uint64_t> finished_;
  std::unique_ptr<collectives::NetworkModel> analytic_ = collectives::NetworkModel::build("analytic", "engine");
  std::map<std::tuple<std::uint32_t, int, double, int, double>, Template> templates_;  // (group, op, bytes, algo or -1: tuned, rail share)
  topology::Path path_;
};

}  // namespace

ProgramResult simulate(const parallelism::Program& p, const topology::Topology& t, const SimulateOptions& o) {
  return Engine(p, t, o).run();
}

}  // namespace wallsim::engine
