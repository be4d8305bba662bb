#include "engine/simulate.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <tuple>
#include <unordered_map>

#include "collectives/flow_solver.hpp"
#include "collectives/network_model.hpp"
#include "core/error.hpp"

namespace wallsim::engine {
namespace {

using parallelism::ProgramOp;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::uint32_t kNone = ~std::uint32_t{0};

struct OpState {
  std::uint32_t deps_left = 0;
  std::vector<std::uint32_t> dependents;  // ops of the same rank waiting on this one
  bool started = false, done = false;
  double start = 0.0, end = 0.0;
};

struct RankState {
  std::vector<OpState> ops;
  std::array<std::vector<std::uint32_t>, parallelism::kStreams> streams;  // op indices in order
  std::array<std::size_t, parallelism::kStreams> head{};
};

/// A collective in flight: its members' ops and, per member, the transfers not yet done.
struct Instance {
  std::vector<std::uint32_t> op_of;    // by member position: the member's op
  std::vector<std::uint32_t> left;     // by member position
  std::uint32_t group = 0;
  std::uint32_t posted = 0;
};

/// A send and its receive.
struct Pair {
  std::uint32_t send_op = kNone, recv_op = kNone;
};

struct Transfer {
  topology::NodeId src = 0, dst = 0;
  double bytes = 0.0;
  std::uint32_t deps_left = 0;
  std::vector<std::uint32_t> dependents;
  std::uint32_t instance = kNone;  // a collective's, or kNone for a send
  std::uint32_t src_member = 0, dst_member = 0;
  std::uint32_t pair = kNone;
  std::uint32_t send_rank = 0, recv_rank = 0;
  double share = 1.0;  // analytic: transfers of its step sharing its busiest endpoint port
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
      : p_(p), t_(t), o_(o), solver_(t, o.reserved_Bps) {
    ranks_.resize(p.ranks.size());
    compute_.assign(p.ranks.size(), 0.0);
    up_sent_.assign(p.ranks.size(), 0.0);
    out_sent_.assign(p.ranks.size(), 0.0);
    for (std::uint32_t r = 0; r < p.ranks.size(); ++r) rank_of_gpu_[p.ranks[r].gpu] = r;
    for (std::uint32_t r = 0; r < p.ranks.size(); ++r) {
      const auto& ops = p.ranks[r].ops;
      RankState& rs = ranks_[r];
      rs.ops.resize(ops.size());
      for (std::uint32_t i = 0; i < ops.size(); ++i) {
        for (auto d : ops[i].deps) {
          if (d >= i) throw Error(where(r, i), "depends on op " + std::to_string(d) + ", which is not an earlier op");
          rs.ops[d].dependents.push_back(i);
        }
        rs.ops[i].deps_left = static_cast<std::uint32_t>(ops[i].deps.size());
        rs.streams[static_cast<std::size_t>(ops[i].stream)].push_back(i);
      }
    }
  }

  ProgramResult run() {
    if (o_.flow) {
      for (const auto& f : o_.background) {
        const auto id = solver_.add(f);
        if (transfer_of_flow_.size() <= id) transfer_of_flow_.resize(id + 1, kNone);
        transfer_of_flow_[id] = kNone;
      }
    }
    for (std::uint32_t r = 0; r < ranks_.size(); ++r) try_start(r);
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
            finish_run(e.a, e.b, e.n);
          } else {
            finish_transfer(e.a);
          }
        }
      } else {
        now_ = t_flow;
        const auto done = solver_.advance_to(Seconds::of(t_flow));
        finished_.assign(done.begin(), done.end());  // finishing may add flows
        for (auto id : finished_) {
          if (transfer_of_flow_[id] == kNone) {  // background traffic
            background_end_ = now_;
          } else {
            finish_transfer(transfer_of_flow_[id]);
          }
        }
      }
    }
    ProgramResult res;
    res.ops.resize(ranks_.size());
    res.compute.resize(ranks_.size());
    double makespan = 0.0;
    for (std::uint32_t r = 0; r < ranks_.size(); ++r) {
      for (std::uint32_t i = 0; i < ranks_[r].ops.size(); ++i) {
        const OpState& s = ranks_[r].ops[i];
        if (!s.done) throw Error(where(r, i), never_ran(r, i));
        res.ops[r].push_back({Seconds::of(s.start), Seconds::of(s.end)});
        makespan = std::max(makespan, s.end);
      }
      res.compute[r] = Seconds::of(compute_[r]);
    }
    res.makespan = Seconds::of(makespan);
    res.transfers = started_transfers_;
    for (std::size_t r = 0; r < ranks_.size(); ++r) {
      res.scale_up_sent.push_back(Bytes::of(up_sent_[r]));
      res.scale_out_sent.push_back(Bytes::of(out_sent_[r]));
    }
    res.flow = solver_.stats();
    res.link_bytes = std::move(link_bytes_);
    res.background_end = Seconds::of(background_end_);
    return res;
  }

 private:
  [[nodiscard]] std::string where(std::uint32_t r, std::uint32_t i) const {
    const auto& op = p_.ranks[r].ops[i];
    return "rank " + std::to_string(r) + " op " + std::to_string(i) + (op.name.empty() ? "" : " (" + op.name + ")");
  }
  [[nodiscard]] std::string never_ran(std::uint32_t r, std::uint32_t i) const {
    const auto& op = p_.ranks[r].ops[i];
    const OpState& s = ranks_[r].ops[i];
    if (s.started && op.kind == ProgramOp::Kind::kCollective) return "never ends: a member of its group never reaches it";
    if (s.started) return "never ends: its peer never posts the matching send or receive";
    return "never starts: it waits on an op that never ends";
  }

  /// Receives are posted in order, each without waiting for the one before to complete (an
  /// irecv): their stream moves on when one is posted, not when it ends. Any order of sends
  /// then matches (Megatron batches each step's isend/irecv, which NCCL progresses in any order).
  static bool posts_only(std::size_t stream) {
    return stream == static_cast<std::size_t>(parallelism::StreamKind::kPipelineRecv);
  }

  void try_start(std::uint32_t r) {
    RankState& rs = ranks_[r];
    for (std::size_t s = 0; s < rs.streams.size(); ++s) {
      while (rs.head[s] < rs.streams[s].size()) {
        const std::uint32_t i = rs.streams[s][rs.head[s]];
        if (rs.ops[i].started || rs.ops[i].deps_left != 0) break;
        start_op(r, i);
        if (!posts_only(s)) break;
        ++rs.head[s];
      }
    }
  }

  void start_op(std::uint32_t r, std::uint32_t i) {
    OpState& s = ranks_[r].ops[i];
    const ProgramOp& op = p_.ranks[r].ops[i];
    s.started = true;
    s.start = now_;
    switch (op.kind) {
      case ProgramOp::Kind::kCompute: {
        // The op and the compute ops right behind it on its stream that wait for nothing else
        // run back to back: one timer for the run (none of them but the last has dependents,
        // so no one needs to hear of the others' ends at their time).
        RankState& rs = ranks_[r];
        const auto stream = static_cast<std::size_t>(op.stream);
        double end = now_ + compute_time(r, i);
        s.end = end;
        std::uint32_t n = 1, last = i;
        for (std::size_t pos = rs.head[stream] + 1; pos < rs.streams[stream].size() && rs.ops[last].dependents.empty(); ++pos) {
          const std::uint32_t k = rs.streams[stream][pos];
          OpState& next = rs.ops[k];
          if (p_.ranks[r].ops[k].kind != ProgramOp::Kind::kCompute || next.deps_left != 0 || next.started) break;
          next.started = true;
          next.start = end;
          end += compute_time(r, k);
          next.end = end;
          last = k;
          ++n;
        }
        timers_.push({end, seq_++, true, r, i, n});
        break;
      }
      case ProgramOp::Kind::kCollective: post_collective(r, i, op); break;
      case ProgramOp::Kind::kSend:
      case ProgramOp::Kind::kRecv: post_p2p(r, i, op); break;
    }
  }

  /// One compute op's time, counted in the rank's compute.
  double compute_time(std::uint32_t r, std::uint32_t i) {
    const ProgramOp& op = p_.ranks[r].ops[i];
    double d = op.duration.value();
    if (d <= 0.0) {
      if (!o_.compute_time) throw Error(where(r, i), "a compute op without a duration needs a compute-time model");
      d = op.count * o_.compute_time(op, r).value();
    }
    if (!(d >= 0.0) || !std::isfinite(d)) throw Error(where(r, i), "compute time is not a finite, non-negative number");
    compute_[r] += d;
    return d;
  }

  void finish_op(std::uint32_t r, std::uint32_t i) {
    ranks_[r].ops[i].end = now_;
    finish_run(r, i, 1);
  }

  /// Ends op `i` and the n - 1 ops behind it on its stream (their ends were set when they
  /// started as one run).
  void finish_run(std::uint32_t r, std::uint32_t i, std::uint32_t n) {
    RankState& rs = ranks_[r];
    const auto stream = static_cast<std::size_t>(p_.ranks[r].ops[i].stream);
    if (posts_only(stream)) {  // already past its stream's head
      OpState& s = rs.ops[i];
      s.done = true;
      for (auto d : s.dependents) --rs.ops[d].deps_left;
      try_start(r);
      return;
    }
    for (std::uint32_t j = 0; j < n; ++j) {
      OpState& s = rs.ops[rs.streams[stream][rs.head[stream]]];
      s.done = true;
      ++rs.head[stream];
      for (auto d : s.dependents) --rs.ops[d].deps_left;
    }
    try_start(r);
  }

  // ---- collectives -----------------------------------------------------------------------

  void post_collective(std::uint32_t r, std::uint32_t i, const ProgramOp& op) {
    if (op.group >= p_.groups.size()) throw Error(where(r, i), "group " + std::to_string(op.group) + " does not exist");
    const auto& g = p_.groups[op.group];
    const auto pos = std::find(g.begin(), g.end(), r);
    if (pos == g.end()) throw Error(where(r, i), "rank " + std::to_string(r) + " is not in group " + std::to_string(op.group));
    auto [it, fresh] = instance_of_.try_emplace({op.group, op.collective}, static_cast<std::uint32_t>(instances_.size()));
    if (fresh) {
      instances_.emplace_back();
      instances_.back().op_of.assign(g.size(), kNone);
      instances_.back().group = op.group;
    }
    Instance& in = instances_[it->second];
    const auto m = static_cast<std::size_t>(pos - g.begin());
    if (in.op_of[m] != kNone) throw Error(where(r, i), "reaches its group's collective " + std::to_string(op.collective) + " twice");
    in.op_of[m] = i;
    if (++in.posted == g.size()) launch(it->second, op);
  }

  /// A collective's transfers with their dependencies, by member position, built once per
  /// group, op, size and algorithm and instantiated at every launch.
  struct Template {
    std::vector<Transfer> transfers;   // dependents are template indices
    std::vector<std::uint32_t> left;   // transfers per member
    std::vector<std::uint32_t> ready;  // transfers with no dependency
  };

  /// Every member is there: the algorithm's steps become transfers, each waiting for what
  /// its sender received in the step before and for its sender's own previous send.
  void launch(std::uint32_t id, const ProgramOp& op) {
    const auto& g = p_.groups[op.group];
    const Template& tpl = template_of(op);
    const auto base = static_cast<std::uint32_t>(transfers_.size());
    for (const Transfer& tt : tpl.transfers) {
      Transfer tr = tt;
      tr.instance = id;
      for (auto& d : tr.dependents) d += base;
      transfers_.push_back(std::move(tr));
    }
    instances_[id].left = tpl.left;
    for (std::uint32_t m = 0; m < g.size(); ++m) {
      if (instances_[id].left[m] == 0) finish_op(g[m], instances_[id].op_of[m]);
    }
    for (auto x : tpl.ready) start_transfer(base + x);
  }

  const Template& template_of(const ProgramOp& op) {
    const auto key = std::tuple{op.group, static_cast<int>(op.op), op.bytes.value(), op.tuned ? -1 : static_cast<int>(op.algo)};
    if (const auto it = templates_.find(key); it != templates_.end()) return it->second;
    const auto& g = p_.groups[op.group];
    std::vector<topology::NodeId> gpus;
    std::unordered_map<topology::NodeId, std::uint32_t> member;
    for (std::uint32_t m = 0; m < g.size(); ++m) {
      gpus.push_back(p_.ranks[g[m]].gpu);
      if (!member.emplace(gpus.back(), m).second) {
        throw Error("group " + std::to_string(op.group), "two ranks on one GPU in a collective");
      }
    }
    std::string why;
    std::optional<collectives::Schedule> s;
    if (op.tuned) {
      // NCCL's tuner: the fastest valid algorithm by alpha-beta.
      s = collectives::choose_schedule(t_, op.op, gpus, op.bytes, {}, {}, std::nullopt, *analytic_).schedule;
    } else {
      s = collectives::build_schedule(t_, op.op, op.algo, gpus, op.bytes, {}, &why);
    }
    if (!s) throw Error("group " + std::to_string(op.group), to_string(op.algo) + " cannot run " + to_string(op.op) + ": " + why);
    Template tpl;
    tpl.left.assign(g.size(), 0);
    auto& tt = tpl.transfers;
    std::vector<std::vector<std::uint32_t>> prev_in(g.size()), prev_out(g.size()), in(g.size()), out(g.size());
    for (const auto& ph : s->phases) {
      const double reps = ph.repeat;
      if (reps != std::floor(reps) || reps < 0.0) throw std::logic_error("simulate: a schedule step repeats a fractional count");
      for (double k = 0; k < reps; ++k) {
        for (auto& v : in) v.clear();
        for (auto& v : out) v.clear();
        ph.for_each([&](const collectives::Transfer& x) {
          if (x.src == x.dst) return;
          const auto x_id = static_cast<std::uint32_t>(tt.size());
          Transfer tr;
          tr.src = x.src;
          tr.dst = x.dst;
          tr.bytes = x.bytes.value();
          tr.src_member = member.at(x.src);
          tr.dst_member = member.at(x.dst);
          for (auto d : prev_in[tr.src_member]) tt[d].dependents.push_back(x_id);
          for (auto d : prev_out[tr.src_member]) tt[d].dependents.push_back(x_id);
          tr.deps_left = static_cast<std::uint32_t>(prev_in[tr.src_member].size() + prev_out[tr.src_member].size());
          ++tpl.left[tr.src_member];
          ++tpl.left[tr.dst_member];
          in[tr.dst_member].push_back(x_id);
          out[tr.src_member].push_back(x_id);
          if (tr.deps_left == 0) tpl.ready.push_back(x_id);
          tt.push_back(std::move(tr));
        });
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
    return templates_.emplace(key, std::move(tpl)).first->second;
  }

  /// Under `analytic`, the transfers of one step that leave or enter one endpoint share its
  /// link (as the analytic collective model has it): each is slowed by its busiest port's
  /// count, ports counted apart inside and across scale-up domains.
  void share_ports(std::vector<Transfer>& tt, const std::vector<std::vector<std::uint32_t>>& out,
                   const std::vector<std::vector<std::uint32_t>>& in, std::size_t members) {
    if (o_.flow) return;
    const std::size_t dom = t_.info().domain_size;
    auto cross = [dom](const Transfer& x) { return dom > 0 && x.src / dom != x.dst / dom; };
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

  // ---- point to point --------------------------------------------------------------------

  void post_p2p(std::uint32_t r, std::uint32_t i, const ProgramOp& op) {
    if (op.peer >= p_.ranks.size()) throw Error(where(r, i), "peer rank " + std::to_string(op.peer) + " does not exist");
    const bool send = op.kind == ProgramOp::Kind::kSend;
    const auto key = send ? std::tuple{r, op.peer, op.tag} : std::tuple{op.peer, r, op.tag};
    auto [it, fresh] = pair_of_.try_emplace(key, static_cast<std::uint32_t>(pairs_.size()));
    if (fresh) pairs_.emplace_back();
    Pair& pr = pairs_[it->second];
    std::uint32_t& mine = send ? pr.send_op : pr.recv_op;
    if (mine != kNone) throw Error(where(r, i), "a second op with the same peer and tag " + std::to_string(op.tag));
    mine = i;
    if (pr.send_op == kNone || pr.recv_op == kNone) return;
    const std::uint32_t sender = send ? r : op.peer, receiver = send ? op.peer : r;
    const ProgramOp& s_op = p_.ranks[sender].ops[pr.send_op];
    Transfer tr;
    tr.src = p_.ranks[sender].gpu;
    tr.dst = p_.ranks[receiver].gpu;
    tr.bytes = s_op.bytes.value();
    tr.pair = it->second;
    tr.send_rank = sender;
    tr.recv_rank = receiver;
    transfers_.push_back(std::move(tr));
    start_transfer(static_cast<std::uint32_t>(transfers_.size() - 1));
  }

  // ---- transfers -------------------------------------------------------------------------

  void start_transfer(std::uint32_t x) {
    ++started_transfers_;
    const Transfer& tr = transfers_[x];
    if (tr.src == tr.dst) {
      timers_.push({now_, seq_++, false, x, 0});
      return;
    }
    const std::size_t dom = t_.info().domain_size;
    const bool out = dom == 0 || tr.src / dom != tr.dst / dom;
    if (const auto it = rank_of_gpu_.find(tr.src); it != rank_of_gpu_.end()) (out ? out_sent_ : up_sent_)[it->second] += tr.bytes;
    const std::uint64_t key = flow_key_++;
    if (o_.link_bytes) {  // the route the transfer takes (the flow model's, the same key)
      if (link_bytes_.empty()) link_bytes_.assign(t_.num_links(), 0.0);
      t_.route_into(tr.src, tr.dst, key, path_);
      for (auto l : path_) link_bytes_[l] += tr.bytes;
    }
    if (o_.flow) {
      const auto id = solver_.add({t_.route(tr.src, tr.dst, key), Bytes::of(tr.bytes), Seconds::of(now_) + o_.overhead, 1.0});
      if (transfer_of_flow_.size() <= id) transfer_of_flow_.resize(id + 1, kNone);
      transfer_of_flow_[id] = x;
    } else {
      const auto cost = t_.route_cost(tr.src, tr.dst, key, path_);
      timers_.push({now_ + o_.overhead.value() + cost.latency.value() + tr.share * tr.bytes / cost.bandwidth.value(), seq_++,
                    false, x, 0});
    }
  }

  void finish_transfer(std::uint32_t x) {
    // By index throughout: finishing an op may post the next collective, whose launch grows
    // transfers_ and instances_.
    for (std::size_t k = 0; k < transfers_[x].dependents.size(); ++k) {
      const auto d = transfers_[x].dependents[k];
      if (--transfers_[d].deps_left == 0) start_transfer(d);
    }
    const std::uint32_t instance = transfers_[x].instance;
    if (instance != kNone) {
      const auto& g = p_.groups[instances_[instance].group];
      for (auto m : {transfers_[x].src_member, transfers_[x].dst_member}) {
        if (--instances_[instance].left[m] == 0) finish_op(g[m], instances_[instance].op_of[m]);
      }
    } else {
      const Pair pr = pairs_[transfers_[x].pair];
      const auto sender = transfers_[x].send_rank, receiver = transfers_[x].recv_rank;
      finish_op(sender, pr.send_op);
      finish_op(receiver, pr.recv_op);
    }
  }

  const parallelism::Program& p_;
  const topology::Topology& t_;
  const SimulateOptions& o_;
  collectives::FlowSolver solver_;
  std::vector<RankState> ranks_;
  std::vector<double> compute_, up_sent_, out_sent_;
  std::vector<double> link_bytes_;  ///< per link, when asked for
  double background_end_ = 0.0;
  std::unordered_map<topology::NodeId, std::uint32_t> rank_of_gpu_;
  double now_ = 0.0;
  std::uint64_t seq_ = 0, flow_key_ = 0;
  std::size_t started_transfers_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> instance_of_;
  std::vector<Instance> instances_;
  std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, std::uint32_t> pair_of_;
  std::vector<Pair> pairs_;
  std::vector<Transfer> transfers_;
  std::vector<std::uint32_t> transfer_of_flow_;
  std::vector<collectives::FlowSolver::Id> finished_;
  std::unique_ptr<collectives::NetworkModel> analytic_ = collectives::NetworkModel::build("analytic", "engine");
  std::map<std::tuple<std::uint32_t, int, double, int>, Template> templates_;  // (group, op, bytes, algo or -1: tuned)
  topology::Path path_;
};

}  // namespace

ProgramResult simulate(const parallelism::Program& p, const topology::Topology& t, const SimulateOptions& o) {
  return Engine(p, t, o).run();
}

}  // namespace wallsim::engine
