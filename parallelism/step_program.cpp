#include "parallelism/step_program.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <optional>

#include "core/error.hpp"
#include "parallelism/layout.hpp"
#include "parallelism/pipeline.hpp"

namespace wallsim::parallelism {
namespace {

using collectives::Op;

// Where a layer's tensor-parallel collectives sit, as layer_forward marks its kernels: the block
// inputs are gathered after each norm (SP), the block outputs reduced before each residual.
bool gathers_after(const Kernel& k) { return k.opens_block; }
bool reduces_before(const Kernel& k) { return k.closes_block; }

/// One rank's program under construction.
class RankBuilder {
 public:
  /// `total_ops` counts the ops of every stage built so far; the first stage's own count times
  /// `ranks` (the stages) projects the whole program's, so a program too large fails before it is built.
  RankBuilder(RankProgram& out, std::map<std::uint32_t, std::uint32_t>& next_collective, std::size_t& total_ops,
              std::size_t ranks)
      : out_(out), next_(next_collective), total_(total_ops), ranks_(total_ops == 0 ? ranks : 1) {}

  std::uint32_t compute(const Kernel& k, double count = 1.0) {
    ProgramOp op;
    op.kind = ProgramOp::Kind::kCompute;
    op.stream = StreamKind::kCompute;
    op.kernel = k;
    if (sms_taken_ > op.kernel.sms_taken) {
      op.kernel.sms_taken = sms_taken_;
      op.kernel.sms_while_comm = true;  // a pair's: only while an all-to-all runs beside it
    }
    op.count = count;
    op.name = k.name;
    return push(std::move(op));
  }
  std::uint32_t collective(std::uint32_t group, Op what, double bytes, StreamKind stream, std::string name,
                           std::vector<std::uint32_t> deps = {}) {
    ProgramOp op;
    op.kind = ProgramOp::Kind::kCollective;
    op.stream = stream;
    op.group = group;
    op.collective = next_[group]++;  // every member issues its group's collectives in one order
    op.op = what;
    // NCCL's ring for the ring collectives; all-to-all and send/recv are direct exchanges.
    op.algo = what == Op::kAllToAll || what == Op::kSendRecv ? collectives::Algo::kDirect : collectives::Algo::kRing;
    op.tuned = what != Op::kSendRecv;  // a CP ring step is one exchange, not a collective to tune
    op.bytes = Bytes::of(bytes);
    op.name = std::move(name);
    op.deps = std::move(deps);
    return push(std::move(op));
  }
  std::uint32_t p2p(bool send, std::uint32_t peer, std::uint32_t tag, double bytes, std::string name,
                    std::vector<std::uint32_t> deps = {}) {
    ProgramOp op;
    op.kind = send ? ProgramOp::Kind::kSend : ProgramOp::Kind::kRecv;
    op.stream = send ? StreamKind::kPipelineSend : StreamKind::kPipelineRecv;
    op.peer = peer;
    op.tag = tag;
    op.bytes = Bytes::of(bytes);
    op.name = std::move(name);
    op.deps = std::move(deps);
    return push(std::move(op));
  }
  /// After the first forward pass (`ops` of them) of `passes` forward passes: forward passes
  /// alone would hold more ops than the engine holds, over every stage.
  void project(std::size_t ops, std::size_t passes) const {
    if (static_cast<double>(ops) * static_cast<double>(passes) * static_cast<double>(ranks_) > static_cast<double>(kMaxProgramOps)) {
      too_many();
    }
  }
  /// The next compute-stream op also waits for `dep`.
  void gate(std::uint32_t dep) { gate_.push_back(dep); }
  /// From now on, what goes to the compute stream goes to `s` (the second compute stream of an
  /// overlapped pair, or back), and kernels leave `sms_taken` SMs to communication beside them.
  void compute_on(StreamKind s, int sms_taken) {
    stream_ = s;
    sms_taken_ = sms_taken;
  }
  /// Where compute-stream ops go now.
  [[nodiscard]] StreamKind stream() const { return stream_; }
  /// The last op pushed to stream `s` (kNoOp: none yet).
  static constexpr std::uint32_t kNoOp = ~std::uint32_t{0};
  [[nodiscard]] std::uint32_t last_on(StreamKind s) const { return last_on_[static_cast<std::size_t>(s)]; }
  [[nodiscard]] std::uint32_t last() const { return static_cast<std::uint32_t>(out_.ops.size() - 1); }
  /// Op `i` of this rank, to refine after pushing.
  ProgramOp& op(std::uint32_t i) { return out_.ops[i]; }

 private:
  std::uint32_t push(ProgramOp op) {
    if (op.stream == StreamKind::kCompute) op.stream = stream_;
    if (op.stream == stream_ && !gate_.empty()) {
      op.deps.insert(op.deps.end(), gate_.begin(), gate_.end());
      gate_.clear();
    }
    if (++total_ > kMaxProgramOps || (out_.ops.size() + 1) * ranks_ > kMaxProgramOps) too_many();
    last_on_[static_cast<std::size_t>(op.stream)] = static_cast<std::uint32_t>(out_.ops.size());
    out_.ops.push_back(std::move(op));
    return last();
  }

  [[noreturn]] static void too_many() {
    throw Error("training.global_batch", "the step program of the pipeline stages holds more than " +
                                             std::to_string(kMaxProgramOps) +
                                             " ops, the most the event engine holds (fewer micro-batches or layers, "
                                             "or --engine composed)");
  }
  RankProgram& out_;
  std::map<std::uint32_t, std::uint32_t>& next_;
  std::size_t& total_;
  std::size_t ranks_;
  std::vector<std::uint32_t> gate_;
  StreamKind stream_ = StreamKind::kCompute;
  int sms_taken_ = 0;
  std::array<std::uint32_t, kStreams> last_on_ = [] {
    std::array<std::uint32_t, kStreams> a{};
    a.fill(kNoOp);
    return a;
  }();
};

}  // namespace

Program step_program(const ModelSpec& m, const Plan& p) {
  if (p.cp > 1 && !p.flash_attention) throw Error("parallel.cp", "the step program builds context parallelism with fused attention only");
  // Weight gradients in W passes of their own (zero-bubble; DualPipe's split backwards).
  const bool split = p.schedule == PipeSchedule::kZeroBubble || p.schedule == PipeSchedule::kZeroBubbleV || p.dual();
  const PipeMap map(p.schedule, p.pp, p.vpp);
  const Shard sh = shard_of(m, p);
  const auto pc = count_params(m);
  // One micro-batch's activation on one GPU (its 1/cp of the sequence), and the K/V block of
  // that sequence share that context parallelism passes around its ring.
  const double tokens = static_cast<double>(p.micro_batch * p.seq_len) / p.cp;
  const double act_bytes = 2.0 * tokens * static_cast<double>(m.hidden);
  const double kv_bytes = 2.0 * 2.0 * tokens * m.kv_heads * static_cast<double>(m.head_dim) / p.tp;
  const int pp = p.pp;
  const auto n = static_cast<std::size_t>(p.gpus());

  Program prog;
  prog.ranks.resize(n);
  std::size_t total_ops = 0;
  std::map<std::vector<std::uint32_t>, std::uint32_t> group_ids;
  auto group_id = [&](const std::vector<topology::NodeId>& members) {
    std::vector<std::uint32_t> g(members.begin(), members.end());
    auto [it, fresh] = group_ids.try_emplace(g, static_cast<std::uint32_t>(prog.groups.size()));
    if (fresh) prog.groups.push_back(g);
    return it->second;
  };
  auto tag = [&](Pass pass, int mb, int to_virtual) {
    return static_cast<std::uint32_t>((mb * map.count() + to_virtual) * 2 + (pass == Pass::kForward ? 0 : 1));
  };

  // Every rank of a stage runs the same ops over its own groups and peers: the stage's first
  // rank holds them, the others run them renamed (RankProgram::like).
  struct Holder {
    std::uint32_t rank = kOwnOps;
    std::vector<std::uint32_t> groups, peers;  // by kind; the previous and next stage's ranks
  };
  std::vector<Holder> holder(static_cast<std::size_t>(pp));
  for (std::size_t r = 0; r < n; ++r) {
    RankProgram& rp = prog.ranks[r];
    rp.gpu = static_cast<topology::NodeId>(r);
    const Coords c = coords_of(p, static_cast<long long>(r));
    const int stage = c.pp;
    std::vector<std::uint32_t> kinds;  // this rank's groups, of the kinds the plan has, in one order
    auto kind = [&](bool has, GroupKind k) {
      if (!has) return std::uint32_t{0};
      kinds.push_back(group_id(group_of(p, c, k)));
      return kinds.back();
    };
    // Under DualPipe a weight's gradients are reduced over both copies: the data-parallel
    // group of this stage and of its mirror, which hold the same two stages (one group for both).
    Coords mirror = c;
    mirror.pp = pp - 1 - stage;
    auto copies = [&](GroupKind k) {
      if (!p.dual()) return group_of(p, c, k);
      auto g = group_of(p, c.pp <= mirror.pp ? c : mirror, k);
      const auto other = group_of(p, c.pp <= mirror.pp ? mirror : c, k);
      g.insert(g.end(), other.begin(), other.end());
      return g;
    };
    auto kind_of = [&](bool has, const std::vector<topology::NodeId>& members) {
      if (!has) return std::uint32_t{0};
      kinds.push_back(group_id(members));
      return kinds.back();
    };
    const std::uint32_t tp_group = kind(p.tp > 1, GroupKind::kTp);
    // Hybrid sharding: ZeRO's collectives run inside the shard group, and each reduced shard is
    // then all-reduced across the replicas (FSDP2's HSDP).
    const std::uint32_t dp_group = kind_of(p.weight_copies() > 1, copies(p.hybrid() ? GroupKind::kDpShard : GroupKind::kDpCp));
    const std::uint32_t replicas = kind_of(p.hybrid(), group_of(p, c, GroupKind::kDpReplicate));
    const std::uint32_t cp_group = kind(p.cp > 1, GroupKind::kCp);
    const std::uint32_t ep_group = kind(p.ep > 1, GroupKind::kEp);
    const std::uint32_t edp_group =
        kind_of(p.expert_copies() > 1, copies(p.hybrid() ? GroupKind::kExpertDpShard : GroupKind::kExpertDp));
    const std::uint32_t expert_replicas = kind_of(p.hybrid() && p.expert_copies() > 1, group_of(p, c, GroupKind::kExpertDpReplicate));
    // Plain pipelines keep a copy of the word embedding on the last stage when the output layer
    // shares it or a multi-token-prediction module reads it (head_params); its gradients are
    // all-reduced between the two stages after the data-parallel reduction, before the
    // optimizer (Megatron-Core's finalize_model_grads, _allreduce_word_embedding_grads).
    const bool embedding_sync =
        pp > 1 && !p.ends_together() && (m.tied_embeddings || m.mtp_layers > 0) && (stage == 0 || stage == pp - 1);
    Coords first_stage = c, last_stage = c;
    first_stage.pp = 0;
    last_stage.pp = pp - 1;
    const std::uint32_t embedding_group =
        kind_of(embedding_sync, {static_cast<topology::NodeId>(rank_of(p, first_stage)),
                                 static_cast<topology::NodeId>(rank_of(p, last_stage))});
    auto peer = [&](int virtual_stage) {
      Coords o = c;
      o.pp = map.stage_of(virtual_stage);
      return static_cast<std::uint32_t>(rank_of(p, o));
    };
    auto neighbour = [&](int s) {
      Coords o = c;
      o.pp = (s + pp) % pp;
      return static_cast<std::uint32_t>(rank_of(p, o));
    };
    const std::vector<std::uint32_t> peers{neighbour(stage - 1), neighbour(stage + 1)};
    Holder& h = holder[static_cast<std::size_t>(stage)];
    if (h.rank != kOwnOps) {
      rp.like = h.rank;
      for (std::size_t k = 0; k < kinds.size(); ++k) {
        if (h.groups[k] != kinds[k]) rp.group_names.emplace_back(h.groups[k], kinds[k]);
      }
      for (std::size_t k = 0; k < peers.size(); ++k) {
        if (h.peers[k] != peers[k]) rp.peer_names.emplace_back(h.peers[k], peers[k]);
      }
      continue;
    }
    h = {static_cast<std::uint32_t>(r), kinds, peers};
    std::map<std::uint32_t, std::uint32_t> next_collective;
    RankBuilder b(rp, next_collective, total_ops, static_cast<std::size_t>(pp));
    // Tensor-parallel collectives: entering a block (SP gathers the sequence shards) and
    // leaving it (SP reduce-scatters, else all-reduces); in backward, each one's transpose.
    auto tp_enter = [&](const std::string& at) {
      if (p.tp > 1 && p.sp) b.collective(tp_group, Op::kAllGather, act_bytes, StreamKind::kCompute, "TP all-gather " + at);
    };
    auto tp_leave = [&](const std::string& at) {
      if (p.tp > 1) {
        b.collective(tp_group, p.sp ? Op::kReduceScatter : Op::kAllReduce, act_bytes, StreamKind::kCompute,
                     std::string(p.sp ? "TP reduce-scatter " : "TP all-reduce ") + at);
      }
    };
    // Expert parallelism: each GPU's routed tokens (top_k copies, padded to the capacity
    // factor, sequence-sharded under SP) go to their experts' GPUs before the expert GEMMs and
    // come back after them: an all-to-all each way, on the compute stream.
    const double routed = act_bytes / (p.sp ? p.tp : 1) * m.top_k * p.capacity_factor;
    auto ep_exchange = [&](const std::string& what, double bytes_per_value = 2.0) -> std::uint32_t {
      if (p.ep == 1) return RankBuilder::kNoOp;
      const auto x = b.collective(ep_group, Op::kAllToAll, routed * bytes_per_value / 2.0, StreamKind::kCompute, "EP all-to-all " + what);
      if (p.deepep()) {
        // DeepEP: once to each domain the token's experts touch, forwarded inside it.
        ProgramOp& o = b.op(x);
        o.algo = collectives::Algo::kHierarchical;
        o.tuned = false;
        o.rail_share = p.dispatch_rail_share;
      }
      return x;
    };
    // An overlapped pair's passes as Megatron-Core's combined 1F1B issues them
    // (TransformerLayerSchedulePlan.run and TransformerModelChunkSchedulePlan.run in
    // megatron/core/models/common/model_chunk_schedule_plan.py): per layer, on its one compute
    // stream the forward's attention, the backward's MLP, the forward's MLP, the backward's
    // attention; on its one communication stream the backward's combine, the forward's
    // dispatch, the backward's dispatch, the forward's combine. Forward layer j goes with the
    // backward's j-th (from the last); the layers either has left then run alone, the
    // backward's first. The pair's two streams keep their kernels and all-to-alls; what is
    // recorded here (where each part starts, each all-to-all) orders them across the streams.
    struct PassMarks {
      struct Layer {
        // Forward: the attention part's start, the MLP's (after the dispatch); the dispatch,
        // the combine. Backward: the MLP's start (after the combine), the attention's (after
        // the dispatch); the combine, the dispatch.
        std::uint32_t first = RankBuilder::kNoOp, second = RankBuilder::kNoOp;
        std::uint32_t comm1 = RankBuilder::kNoOp, comm2 = RankBuilder::kNoOp;
      };
      std::uint32_t begin = RankBuilder::kNoOp, epilogue = RankBuilder::kNoOp;
      std::vector<Layer> layers;
    };
    PassMarks fwd_marks, bwd_marks;
    PassMarks* marking = nullptr;  // the pair's pass being built, if its order is kept
    bool marking_layer = false;    // a layer of it (not a recompute, not MTP) is being built
    auto next_op = [&] { return static_cast<std::uint32_t>(rp.ops.size()); };
    // Context parallelism (ring attention, as Transformer Engine runs it): fused attention in
    // cp pieces, one per K/V block; the cp - 1 ring steps run on the side stream from the
    // moment the layer's K/V exist, piece j waiting for step j, so a step overlaps the piece
    // before it. Backward passes K/V and their gradients along: twice the bytes per step.
    auto attention = [&](const Kernel& k, double count, double ring_bytes, const std::string& at) {
      if (p.cp == 1 || k.kind != KernelKind::kAttention) {
        b.compute(k, count);
        return;
      }
      std::vector<std::uint32_t> steps;
      for (int j = 1; j < p.cp; ++j) {
        std::vector<std::uint32_t> deps;
        if (j == 1) deps.push_back(b.last());  // the K/V projection (or what precedes the attention)
        steps.push_back(b.collective(cp_group, Op::kSendRecv, ring_bytes, StreamKind::kSide,
                                     "CP ring step " + std::to_string(j) + " " + at, std::move(deps)));
      }
      // Each piece is its own kernel over one K/V block (the diagonal's half-used blocks, in
      // one piece of cp, are left out).
      Kernel piece = k;
      piece.flops = k.flops / p.cp;
      piece.bytes = k.bytes / p.cp;
      piece.keys = k.keys / p.cp;
      piece.causal = false;
      for (int j = 0; j < p.cp; ++j) {
        if (j > 0) b.gate(steps[static_cast<std::size_t>(j - 1)]);
        b.compute(piece, count);
      }
    };
    // TP communication overlap (parallel.tp_comm_overlap; Megatron-Core's --tp-comm-overlap over
    // Transformer Engine's userbuffers, as the composed step has it, engine/step.cpp): in each
    // dense block, the SP all-gather after the norm runs in tp chunks on the side stream, each
    // feeding its chunk of the block's first GEMM (one SM for the copy), and the reduce-scatter
    // before the residual add follows the block's last GEMM in 4 chunks (the GEMM on the SMs the
    // communication kernels leave: 24 after attention, 16 after the MLP). In backward, the output
    // gradient's all-gather feeds the last GEMM's data gradient the same way, and the input
    // gradient's reduce-scatter runs beside the first GEMM's weight gradient, whole (24 SMs in
    // attention, 4 in the MLP). NeMo's userbuffers configuration for Llama 70B on H100 [S]
    // (engine/step.cpp names it). MoE blocks keep their TP communication exposed.
    const bool tp_overlap = p.tp_comm_overlap && p.tp > 1 && p.sp;
    struct Block {
      std::size_t norm = 0, add = 0;     // the norm that opens it, the residual add that closes it
      std::size_t first = 0, last = 0;  // its first and last GEMM (not core attention)
      int index = 0;                     // 0: attention, 1: MLP
    };
    auto overlap_blocks = [&](const std::vector<Kernel>& ks) {
      std::vector<Block> blocks;
      if (!tp_overlap) return blocks;
      int index = 0;
      for (std::size_t a = 0; a < ks.size(); ++a) {
        if (!gathers_after(ks[a])) continue;
        std::size_t end = a + 1;
        while (end < ks.size() && !reduces_before(ks[end])) ++end;
        Block bl{a, end, ks.size(), ks.size(), index++};
        bool moe = false;
        for (std::size_t x = a + 1; x < end; ++x) {
          moe = moe || ks[x].expert_in || ks[x].expert_out;
          if (ks[x].kind != KernelKind::kGemm || ks[x].core_attention) continue;
          if (bl.first == ks.size()) bl.first = x;
          bl.last = x;
        }
        if (!moe && bl.first < ks.size()) blocks.push_back(bl);
      }
      return blocks;
    };
    auto chunk = [](Kernel k, int n, int sms_taken) {
      k.flops = k.flops / n;
      k.bytes = k.bytes / n;
      k.rows /= n;
      k.sms_taken = sms_taken;
      return k;
    };
    // The all-gather pipelined with GEMM `k` (its rows in tp chunks), the first chunk after `after`.
    auto gather_into = [&](const Kernel& k, const std::string& what) {
      const int n = p.tp;
      const Kernel piece = chunk(k, n, 1);
      for (int j = 0; j < n; ++j) {
        const std::vector<std::uint32_t> deps{b.last()};
        b.gate(b.collective(tp_group, Op::kAllGather, act_bytes / n, StreamKind::kSide,
                            "TP all-gather chunk " + std::to_string(j) + " " + what, j == 0 ? deps : std::vector<std::uint32_t>{}));
        b.compute(piece);
      }
    };
    auto forward_layer = [&](const std::vector<Kernel>& ks, const std::string& at) {
      const auto blocks = overlap_blocks(ks);
      auto in_block = [&](std::size_t x, bool first) {
        return std::any_of(blocks.begin(), blocks.end(), [&](const Block& bl) { return (first ? bl.first : bl.last) == x; });
      };
      auto block_of_last = [&](std::size_t x) {
        return std::find_if(blocks.begin(), blocks.end(), [&](const Block& bl) { return bl.last == x; });
      };
      std::vector<std::uint32_t> scatters;  // the overlapped reduce-scatter's chunks: the residual add waits
      for (std::size_t x = 0; x < ks.size(); ++x) {
        const Kernel& k = ks[x];
        if (reduces_before(k)) {
          if (scatters.empty()) tp_leave(at);
          for (auto id : scatters) b.gate(id);
          scatters.clear();
        }
        if (k.expert_in) {  // forward and recompute
          const auto id = ep_exchange("dispatch " + at, p.dispatch_bytes);
          if (marking_layer && marking == &fwd_marks) {
            fwd_marks.layers.back().comm1 = id;
            fwd_marks.layers.back().second = next_op();
          }
        }
        if (k.kind == KernelKind::kAttention) {
          attention(k, 1.0, kv_bytes, at);
        } else if (in_block(x, true)) {
          gather_into(k, at);
        } else if (const auto bl = block_of_last(x); bl != blocks.end()) {
          const int n = 4;
          const Kernel piece = chunk(k, n, bl->index == 0 ? 24 : 16);
          for (int j = 0; j < n; ++j) {
            b.compute(piece);
            scatters.push_back(b.collective(tp_group, Op::kReduceScatter, act_bytes / n, StreamKind::kSide,
                                            "TP reduce-scatter chunk " + std::to_string(j) + " " + at, {b.last()}));
          }
        } else if (k.pass != KernelPass::kBackward) {
          b.compute(k);
        }
        if (k.expert_out) {
          const auto id = ep_exchange("combine " + at);
          if (marking_layer && marking == &fwd_marks) fwd_marks.layers.back().comm2 = id;
        }
        if (gathers_after(k) && std::none_of(blocks.begin(), blocks.end(), [x](const Block& bl) { return bl.norm == x; })) {
          tp_enter(at);
        }
      }
    };
    // A GEMM's weight gradient; attention's batched GEMMs have two activation operands, so both
    // their gradients are input gradients, needed before the layer below can go on.
    auto weight_grad_apart = [&](const Kernel& k) { return split && k.kind == KernelKind::kGemm && !k.core_attention; };
    auto backward_kernel = [&](const Kernel& k, const std::string& at) {
      if (k.pass == KernelPass::kForward) return;
      if (k.pass == KernelPass::kBackward) {
        b.compute(k);
        return;
      }
      if (k.kind == KernelKind::kGemm) {
        b.compute(data_gradient(k));
        if (!weight_grad_apart(k)) b.compute(weight_gradient(k));
      } else if (k.kind == KernelKind::kElementwise) {
        b.compute(elementwise_backward(k));
      } else {
        attention(attention_backward(k), 1.0, 2.0 * kv_bytes, at + " (backward)");
      }
    };
    auto backward_layer = [&](const std::vector<Kernel>& ks, const std::string& at) {
      const bool marked = marking_layer && marking == &bwd_marks;
      if (marked) bwd_marks.layers.emplace_back();
      const auto blocks = overlap_blocks(ks);
      constexpr std::uint32_t kNoScatter = ~std::uint32_t{0};
      std::uint32_t input_scatter = kNoScatter;  // the overlapped reduce-scatter the norm's backward waits for
      bool gather_pending = false;  // the output gradient's all-gather goes with the last GEMM's data gradient
      for (std::size_t x = ks.size(); x-- > 0;) {
        const Kernel& k = ks[x];
        // The transpose of a gather is a reduce-scatter; of SP's reduce-scatter, a gather; of
        // the all-reduce leaving a block without SP, nothing; of its identity entry, an all-reduce.
        if (gathers_after(k) && p.tp > 1) {
          if (input_scatter != kNoScatter) {
            b.gate(input_scatter);
            input_scatter = kNoScatter;
          } else {
            b.collective(tp_group, p.sp ? Op::kReduceScatter : Op::kAllReduce, act_bytes, StreamKind::kCompute,
                         std::string(p.sp ? "TP reduce-scatter " : "TP all-reduce ") + at + " (backward)");
          }
        }
        if (k.expert_out) {
          const auto id = ep_exchange("combine " + at + " (backward)");
          if (marked) {
            bwd_marks.layers.back().comm1 = id;
            bwd_marks.layers.back().first = next_op();
          }
        }
        const auto first = std::find_if(blocks.begin(), blocks.end(), [&](const Block& bl) { return bl.first == x; });
        const auto last = std::find_if(blocks.begin(), blocks.end(), [&](const Block& bl) { return bl.last == x; });
        if (last != blocks.end() && gather_pending && k.pass == KernelPass::kBoth) {
          gather_into(data_gradient(k), at + " (backward)");
          if (!weight_grad_apart(k)) b.compute(weight_gradient(k));
          gather_pending = false;
        } else if (first != blocks.end() && k.pass == KernelPass::kBoth) {
          b.compute(data_gradient(k));
          input_scatter = b.collective(tp_group, Op::kReduceScatter, act_bytes, StreamKind::kSide,
                                       "TP reduce-scatter " + at + " (backward, overlapped)", {b.last()});
          if (!weight_grad_apart(k)) {
            Kernel w = weight_gradient(k);
            w.sms_taken = first->index == 0 ? 24 : 4;
            b.compute(w);
          }
        } else {
          backward_kernel(k, at);
        }
        if (k.expert_in) {
          const auto id = ep_exchange("dispatch " + at + " (backward)");
          if (marked) {
            bwd_marks.layers.back().comm2 = id;
            bwd_marks.layers.back().second = next_op();
          }
        }
        if (reduces_before(k) && p.tp > 1 && p.sp) {
          if (std::any_of(blocks.begin(), blocks.end(), [x](const Block& bl) { return bl.add == x; })) {
            gather_pending = true;
          } else {
            b.collective(tp_group, Op::kAllGather, act_bytes, StreamKind::kCompute, "TP all-gather " + at + " (backward)");
          }
        }
      }
    };

    // A layer's backward, after what recompute reruns of its forward: all of it (full), or the
    // modules selective recompute names (Megatron-Core's --recompute-modules; the attention
    // core alone by default), in order.
    auto recompute_and_backward = [&](const std::vector<Kernel>& ks, const std::string& at) {
      if (p.recompute == Recompute::kFull) {
        forward_layer(ks, at + " (recompute)");
      } else if (p.recompute == Recompute::kSelective) {
        for (const auto& k : ks) {
          Kernel again = k;
          again.name += " (recompute)";
          if (k.core_attention && (p.recompute_modules & kCoreAttn) != 0) {
            attention(again, 1.0, kv_bytes, at + " (recompute)");
          } else if ((k.module & p.recompute_modules) != 0 && k.pass != KernelPass::kBackward) {
            b.compute(again);
          }
        }
      } else if (p.recompute == Recompute::kOp) {
        // torchtitan's per-op checkpointing: what its save list does not keep, rerun (a share
        // of a fused GEMM: its rows' columns that matmul wrote), with SP's all-gathers, whose
        // outputs it does not keep either.
        for (const auto& k : ks) {
          if (k.pass != KernelPass::kBackward && k.op_rerun > 0.0) {
            Kernel again = k;
            again.name += " (recompute)";
            again.flops = k.flops * k.op_rerun;
            again.bytes = k.bytes * k.op_rerun;
            again.cols = k.cols * k.op_rerun;
            b.compute(again);
          }
          if (gathers_after(k)) tp_enter(at + " (recompute)");
        }
      }
      backward_layer(ks, at);
    };

    // Parameters of layer i on this GPU before ZeRO; the embedding goes with the stage's first
    // layer, the final norm, LM head and MTP modules with its last (head_params; their gathers
    // and gradient buckets).
    // The layers this rank holds, by chunk (DualPipe: its model stage and its mirror's), and
    // the first and last that the embedding and the head ride with (a chunk may be empty;
    // plan.cpp gives every stage one).
    struct Held {
      int first, count;
    };
    std::vector<Held> held;
    int embedding_at = -1, head_at = -1;
    bool holds_first = false, holds_last = false;  // the path's first and last place (a chunk may be empty)
    for (int ch = 0; ch < map.chunks(); ++ch) {
      holds_first = holds_first || map.at(ch, stage).first;
      holds_last = holds_last || map.at(ch, stage).last;
    }
    for (int ch = 0; ch < map.chunks(); ++ch) {
      const PipePlace at = map.at(ch, stage);
      const Held h{p.first_layer(at.layer_chunk, at.layer_stage), p.layers_of(at.layer_chunk, at.layer_stage)};
      held.push_back(h);
      if (h.count == 0) continue;
      if (holds_first && at.layer_stage == 0 && (embedding_at < 0 || h.first < embedding_at)) embedding_at = h.first;
      if (holds_last && at.layer_stage == pp - 1) head_at = std::max(head_at, h.first + h.count - 1);
    }
    // ZB-V's rank 0 holds one chunk of each end: if that chunk is empty, they ride with the
    // rank's other layers.
    const bool embedding_unplaced = holds_first && embedding_at < 0, head_unplaced = holds_last && head_at < 0;
    for (const Held& h : held) {
      if (h.count == 0) continue;
      if (embedding_unplaced && (embedding_at < 0 || h.first < embedding_at)) embedding_at = h.first;
      if (head_unplaced) head_at = std::max(head_at, h.first + h.count - 1);
    }
    // Expert weights are sharded over ep x etp and replicated over the expert-data-parallel group.
    const LayerParams with_head = head_params(m, pc, p);
    auto expert_params_of = [&](int i) { return layer_params(m, pc, p, i).expert + (i == head_at ? with_head.expert : 0.0); };
    auto params_of = [&](int i) {
      double x = layer_params(m, pc, p, i).dense;
      if (i == embedding_at) x += pc.embedding / p.tp;
      if (i == head_at) x += with_head.dense;
      return x;
    };
    // Each multi-token-prediction module's kernels, named as its: its projection, its layer
    // (as the model's last) and the shared head again.
    auto named = [](std::vector<Kernel> ks, const std::string& prefix) {
      for (auto& k : ks) k.name = prefix + k.name;
      return ks;
    };
    const bool mtp = m.mtp_layers > 0;
    const auto mtp_front = mtp ? mtp_forward(m, sh) : std::vector<Kernel>{};
    const auto mtp_layer = mtp ? named(layer_forward(m, m.layers, sh), "mtp ") : std::vector<Kernel>{};
    const auto mtp_head = mtp ? named(head_forward(m, sh), "mtp ") : std::vector<Kernel>{};
    // ZeRO-3 / FSDP: a layer's weights are gathered over the data-parallel group before its
    // forward and again before its backward, one layer ahead (the gather of layer i+1 starts
    // when layer i starts); ZeRO-2 and 3 reduce-scatter each layer's gradients after its
    // backward, in every micro-batch.
    const bool any_dp = p.weight_copies() > 1 || p.expert_copies() > 1;
    const bool shard_weights = p.zero >= 3 && any_dp, shard_grads = p.zero >= 2 && any_dp;
    // FSDP's choices: gradients reduce-scattered per micro-batch or once per step (then as the
    // buckets below, after each layer's last backward); weights gathered again for the
    // backward, or kept (under pipelines, torchtitan keeps them the whole step: one gather per
    // layer per step).
    const bool scatter_each = shard_grads && !p.grad_reduce_per_step;
    const bool gather_backward = shard_weights && p.reshard_after_forward;
    const bool gather_once = shard_weights && !p.reshard_after_forward && pp > 1;
    std::vector<char> gathered(static_cast<std::size_t>(m.layers), 0);
    // One collective over the data-parallel group for the dense weights and one over the
    // expert-data-parallel group for the experts', where each has peers and bytes.
    auto over_dp = [&](Op op, double bytes_per_param, double dense_params, double expert_params, StreamKind stream,
                       const std::string& name, const std::vector<std::uint32_t>& deps) {
      std::vector<std::uint32_t> ids;
      if (p.weight_copies() > 1 && dense_params > 0.0) {
        ids.push_back(b.collective(dp_group, op, bytes_per_param * dense_params, stream, name, deps));
        if (p.hybrid() && op == Op::kReduceScatter) {
          ids.back() = b.collective(replicas, Op::kAllReduce, bytes_per_param * dense_params / p.weight_shards(), stream,
                                    name + " (across replicas)", {ids.back()});
        }
      }
      if (p.expert_copies() > 1 && expert_params > 0.0) {
        ids.push_back(b.collective(edp_group, op, bytes_per_param * expert_params, stream, name + " (experts)", deps));
        if (p.hybrid() && op == Op::kReduceScatter && p.expert_weight_shards() < p.expert_copies()) {
          ids.back() = b.collective(expert_replicas, Op::kAllReduce, bytes_per_param * expert_params / p.expert_weight_shards(),
                                    stream, name + " (experts, across replicas)", {ids.back()});
        }
      }
      return ids;
    };
    // The first op of each layer of the pass in hand so far: a gather starts with the layer
    // prefetch_layers before its own (FSDP's prefetch), on the parameter stream in layer order.
    std::vector<std::uint32_t> layer_starts;
    auto gather = [&](int i, const std::string& what) {
      std::vector<std::uint32_t> deps;
      const auto ahead = static_cast<std::size_t>(p.prefetch_layers);
      if (layer_starts.size() >= ahead) deps.push_back(layer_starts[layer_starts.size() - ahead]);
      // With the FSDP Float8 all-gather the linears' weights come as FP8, 1 byte each.
      const double dense_bytes = kWeightBytesPerParam * params_of(i) - fp8_gathered_params(m, pc, p, i);
      for (auto id : over_dp(Op::kAllGather, 1.0, dense_bytes, kWeightBytesPerParam * expert_params_of(i), StreamKind::kParamGather,
                             "ZeRO-3 all-gather layer " + std::to_string(i) + what, deps)) {
        b.gate(id);
      }
    };
    // ZeRO-1/2 with overlap_param_gather (Megatron's --overlap-param-gather): the weights the
    // last step's optimizer updated are all-gathered layer by layer as this step begins, on the
    // parameter stream; each layer's first forward waits for its own.
    std::vector<std::vector<std::uint32_t>> early_gathers(static_cast<std::size_t>(m.layers));
    if (p.overlap_param_gather && p.zero >= 1 && p.zero <= 2 && any_dp) {
      for (const Held& h : held) {
        for (int i = h.first; i < h.first + h.count; ++i) {
          early_gathers[static_cast<std::size_t>(i)] =
              over_dp(Op::kAllGather, kWeightBytesPerParam, params_of(i), expert_params_of(i), StreamKind::kParamGather,
                      "DP all-gather layer " + std::to_string(i) + " (overlapped)", {});
        }
      }
    }
    std::vector<std::uint32_t> grad_scatters;
    std::vector<std::uint32_t> layer_done(static_cast<std::size_t>(m.layers), 0);  // last backward op of each layer
    std::uint32_t last_backward = 0;
    const auto order =
        stage_order(p.schedule, pp, p.vpp, static_cast<int>(p.micro_batches), stage, p.microbatch_group, p.overlap_ep);
    const auto forwards = static_cast<std::size_t>(
        std::count_if(order.begin(), order.end(), [](const PipeOp& po) { return po.pass == Pass::kForward; }));
    bool projected = false;
    // Inputs arrive before their pass (an overlapped pair's both before its forward); outputs
    // leave after the op output_after names (DualPipe defers some).
    const auto leaves = output_after(p.schedule, order);
    constexpr std::uint32_t kNotYet = RankBuilder::kNoOp;
    // Per pass: its input's arrival (the receive, or the re-gather after it), and its last op
    // on its compute stream (or its input's arrival, for an empty chunk) that its output leaves after.
    std::vector<std::uint32_t> received(order.size(), kNotYet), pass_end(order.size(), kNotYet);
    std::uint32_t pass_mark = kNotYet;
    auto where_of = [&](const PipeOp& q) {
      return " mb " + std::to_string(q.micro_batch) + (map.chunks() > 1 ? " chunk " + std::to_string(q.chunk) : "");
    };
    auto receive = [&](std::size_t k) {
      const PipeOp& q = order[k];
      const PipePlace at = map.at(q.chunk, stage);
      const bool f = q.pass == Pass::kForward;
      if (q.pass == Pass::kWeight || received[k] != kNotYet || (f ? at.first : at.last)) return;
      const int from = f ? map.prev(at.virtual_stage) : map.next(at.virtual_stage);
      if (map.stage_of(from) == stage) return;  // ZB-V's turn: on this rank, earlier on its stream
      received[k] = b.p2p(false, peer(from), tag(q.pass, q.micro_batch, at.virtual_stage), 0.0,
                          std::string(f ? "recv activation" : "recv gradient") + where_of(q));
      b.gate(received[k]);
      // Without SP the tensor came split over the TP ranks (Megatron's scatter/gather
      // optimization, SC'21 sec. 4.1): gathered again over the scale-up link.
      if (p.tp > 1 && !p.sp) {
        received[k] = b.collective(tp_group, Op::kAllGather, act_bytes, StreamKind::kCompute, "TP re-gather" + where_of(q));
      }
    };
    auto send_outputs = [&](std::size_t k) {
      for (std::size_t j = k >= 2 ? k - 2 : 0; j <= k; ++j) {  // an output leaves at most 2 ops later
        const PipeOp& q = order[j];
        if (leaves[j] != k || q.pass == Pass::kWeight) continue;
        const PipePlace at = map.at(q.chunk, stage);
        const bool f = q.pass == Pass::kForward;
        if (f ? at.last : at.first) continue;
        const int to = f ? map.next(at.virtual_stage) : map.prev(at.virtual_stage);
        if (map.stage_of(to) == stage) continue;
        std::vector<std::uint32_t> after;  // its own pass and the one it waits for
        for (auto x : {pass_end[j], pass_end[k]}) {
          if (x != kNotYet && std::find(after.begin(), after.end(), x) == after.end()) after.push_back(x);
        }
        const auto sent = b.p2p(true, peer(to), tag(q.pass, q.micro_batch, to), act_bytes / p.tp,
                                std::string(f ? "send activation" : "send gradient") + where_of(q), std::move(after));
        if (!p.overlap_p2p_comm) b.gate(sent);  // batched p2p: waited for before the next kernel
      }
    };
    // An overlapped pair (DualPipe's _forward_backward_chunk): the forward on the compute
    // stream, its backward (and W) on the second one; their kernels share the SMs, each one's
    // communication runs beside the other's kernels, which leave the SMs DeepSeek-V3 gives its
    // all-to-all kernels (20 of the H800's 132: DeepSeek-V3 technical report, sec. 3.2.2) [S].
    // Megatron-Core's combined 1F1B leaves its all-to-all what its dispatcher takes: DeepEP's
    // 20 SMs (moe_deepep_num_sms), or NCCL's, up to its 32 CTAs on Hopper (the max_ctas that
    // parallel_state's communicator options give) [S].
    const int kPairCommSms = p.dual() || p.deepep() ? 20 : 32;
    std::size_t pair_end = order.size();  // the last op of the pair in hand
    std::uint32_t before_pair = kNotYet;  // the compute stream's last op before it
    // A pass ends: its outputs leave; after a pair, the compute stream goes on once the pair's
    // backward is done too.
    // The pair's order kept (see PassMarks): each part's first kernel waits for the kernels of
    // the part before it on the other compute stream, each all-to-all for the one before it.
    // Kept where the pair's two passes share no in-order stream but their compute streams:
    // CP's ring steps and TP overlap's chunks (side stream) and ZeRO-3's gathers (parameter
    // stream) of the forward, all queued before the backward's, would wait on the order's
    // later parts. There the two streams take the SMs as they are ready, as before.
    const bool keep_pair_order = p.ep > 1 && p.cp == 1 && !tp_overlap && !shard_weights;
    auto order_pair = [&] {
      const std::uint32_t end = next_op();
      struct Part {
        StreamKind stream;
        std::uint32_t first = RankBuilder::kNoOp, last = RankBuilder::kNoOp;  // its kernels
      };
      // A pass's parts, each from its mark to the next one's (a mark where the next one is
      // too marks an empty part): its prologue, each layer's two, its epilogue.
      struct Parts {
        Part pro, epi;
        std::vector<std::array<Part, 2>> layers;
      };
      auto parts_of = [&](const PassMarks& pm, StreamKind stream) {
        std::vector<std::pair<std::uint32_t, Part*>> at;
        Parts out{{stream}, {stream}, std::vector<std::array<Part, 2>>(pm.layers.size(), {Part{stream}, Part{stream}})};
        at.emplace_back(pm.begin, &out.pro);
        for (std::size_t j = 0; j < pm.layers.size(); ++j) {
          if (pm.layers[j].first != RankBuilder::kNoOp) at.emplace_back(pm.layers[j].first, &out.layers[j][0]);
          if (pm.layers[j].second != RankBuilder::kNoOp) at.emplace_back(pm.layers[j].second, &out.layers[j][1]);
        }
        if (pm.epilogue != RankBuilder::kNoOp) at.emplace_back(pm.epilogue, &out.epi);
        for (std::size_t i = 0; i < at.size(); ++i) {
          Part& part = *at[i].second;
          for (std::uint32_t x = at[i].first; x < (i + 1 < at.size() ? at[i + 1].first : end); ++x) {
            if (rp.ops[x].kind != ProgramOp::Kind::kCompute || rp.ops[x].stream != stream) continue;
            if (part.first == RankBuilder::kNoOp) part.first = x;
            part.last = x;
          }
        }
        return out;
      };
      const Parts f = parts_of(fwd_marks, StreamKind::kCompute), bw = parts_of(bwd_marks, StreamKind::kCompute2);
      std::vector<const Part*> chain;
      std::vector<std::uint32_t> comms;
      auto part = [&](const Part& x) {
        if (x.first != RankBuilder::kNoOp) chain.push_back(&x);
      };
      auto comm = [&](std::uint32_t id) {
        if (id != RankBuilder::kNoOp) comms.push_back(id);
      };
      part(f.pro);
      part(bw.pro);
      const std::size_t nf = fwd_marks.layers.size(), nb = bwd_marks.layers.size(), both = std::min(nf, nb);
      for (std::size_t j = 0; j < both; ++j) {
        const auto &fl = fwd_marks.layers[j], &bl = bwd_marks.layers[j];
        part(f.layers[j][0]), part(bw.layers[j][0]), part(f.layers[j][1]), part(bw.layers[j][1]);
        comm(bl.comm1), comm(fl.comm1), comm(bl.comm2), comm(fl.comm2);
      }
      for (std::size_t j = both; j < nb; ++j) {
        part(bw.layers[j][0]), part(bw.layers[j][1]);
        comm(bwd_marks.layers[j].comm1), comm(bwd_marks.layers[j].comm2);
      }
      for (std::size_t j = both; j < nf; ++j) {
        part(f.layers[j][0]), part(f.layers[j][1]);
        comm(fwd_marks.layers[j].comm1), comm(fwd_marks.layers[j].comm2);
      }
      part(f.epi);
      for (std::size_t i = 1; i < chain.size(); ++i) {
        if (chain[i]->stream != chain[i - 1]->stream) rp.ops[chain[i]->first].deps.push_back(chain[i - 1]->last);
      }
      for (std::size_t i = 1; i < comms.size(); ++i) {
        if (rp.ops[comms[i]].stream != rp.ops[comms[i - 1]].stream) rp.ops[comms[i]].deps.push_back(comms[i - 1]);
      }
      marking = nullptr;
    };
    auto finish_pass = [&](std::size_t k) {
      const std::uint32_t last = b.last_on(b.stream());
      pass_end[k] = last != pass_mark ? last : received[k];
      send_outputs(k);
      if (k != pair_end) return;
      pair_end = order.size();
      if (marking == &bwd_marks) order_pair();
      b.compute_on(StreamKind::kCompute, 0);
      if (pass_end[k] != kNotYet) b.gate(pass_end[k]);
    };
    for (std::size_t k = 0; k < order.size(); ++k) {
      const PipeOp& po = order[k];
      if (po.with_next && k + 1 < order.size()) {
        pair_end = leaves[k];
        before_pair = b.last_on(StreamKind::kCompute);
        b.compute_on(StreamKind::kCompute, p.ep > 1 ? kPairCommSms : 0);
        if (keep_pair_order) {
          fwd_marks = {next_op(), RankBuilder::kNoOp, {}};
          marking = &fwd_marks;
        }
      } else if (k > 0 && order[k - 1].with_next) {
        // The backward starts after what preceded the pair and once its input is in (received
        // before the pair began).
        b.compute_on(StreamKind::kCompute2, p.ep > 1 ? kPairCommSms : 0);
        if (keep_pair_order) {
          bwd_marks = {next_op(), RankBuilder::kNoOp, {}};
          marking = &bwd_marks;
        }
        if (before_pair != kNotYet) b.gate(before_pair);
        if (received[k] != kNotYet) b.gate(received[k]);
      }
      pass_mark = b.last_on(b.stream());
      if (!projected && po.pass != Pass::kForward) {
        b.project(rp.ops.size(), forwards);  // a too large program fails before it is built
        projected = true;
      }
      const PipePlace place = map.at(po.chunk, stage);
      const bool fwd = po.pass == Pass::kForward;
      const int first = held[static_cast<std::size_t>(po.chunk)].first;
      const int layers = held[static_cast<std::size_t>(po.chunk)].count;
      if (po.pass == Pass::kWeight) {
        // A pair's W pass (DualPipe's, after its backward) stays out of the pair's order.
        if (marking == &bwd_marks && bwd_marks.epilogue == RankBuilder::kNoOp) bwd_marks.epilogue = next_op();
        // Zero-bubble's W pass: the deferred weight gradients, no communication but the buckets.
        if (place.last) {
          auto weight_grads = [&](const std::vector<Kernel>& ks) {
            for (auto it = ks.rbegin(); it != ks.rend(); ++it) {
              if (weight_grad_apart(*it)) b.compute(weight_gradient(*it));
            }
          };
          for (int d = 0; d < m.mtp_layers; ++d) {
            weight_grads(mtp_head);
            weight_grads(mtp_layer);
            weight_grads(mtp_front);
          }
          weight_grads(head_forward(m, sh));
        }
        for (int i = first + layers - 1; i >= first; --i) {
          const auto ks = layer_forward(m, i, sh);
          for (auto it = ks.rbegin(); it != ks.rend(); ++it) {
            if (weight_grad_apart(*it)) b.compute(weight_gradient(*it));
          }
          layer_done[static_cast<std::size_t>(i)] = b.last();
          if (scatter_each) {
            for (auto id : over_dp(Op::kReduceScatter, p.grad_bytes, params_of(i), expert_params_of(i),
                                   StreamKind::kDataParallel, "ZeRO reduce-scatter layer " + std::to_string(i), {b.last()})) {
              grad_scatters.push_back(id);
            }
          }
        }
        last_backward = b.last();
        finish_pass(k);
        continue;
      }
      receive(k);
      if (po.with_next && k + 1 < order.size()) receive(k + 1);
      layer_starts.clear();
      if (fwd) {
        for (int i = first; i < first + layers; ++i) {
          if (shard_weights && !(gather_once && gathered[static_cast<std::size_t>(i)] != 0)) gather(i, "");
          gathered[static_cast<std::size_t>(i)] = 1;
          for (auto id : early_gathers[static_cast<std::size_t>(i)]) b.gate(id);
          early_gathers[static_cast<std::size_t>(i)].clear();
          const auto start = static_cast<std::uint32_t>(rp.ops.size());
          if (marking == &fwd_marks) {
            fwd_marks.layers.push_back({start});
            marking_layer = true;
          }
          forward_layer(layer_forward(m, i, sh), "layer " + std::to_string(i));
          marking_layer = false;
          layer_starts.push_back(start);
        }
        if (marking == &fwd_marks) fwd_marks.epilogue = next_op();
        if (place.last) {
          for (const auto& k : head_forward(m, sh)) b.compute(k);
          for (int d = 0; d < m.mtp_layers; ++d) {
            for (const auto& k : mtp_front) b.compute(k);
            forward_layer(mtp_layer, "mtp " + std::to_string(d));
            for (const auto& k : mtp_head) b.compute(k);
          }
        }
      } else {
        // The head's backward needs the last layer's gather (it carries the head's weights).
        const bool head_first = place.last && gather_backward && layers > 0;
        if (head_first) gather(first + layers - 1, " (backward)");
        if (place.last) {
          for (int d = m.mtp_layers - 1; d >= 0; --d) {
            const std::string at = "mtp " + std::to_string(d);
            for (auto it = mtp_head.rbegin(); it != mtp_head.rend(); ++it) backward_kernel(*it, at + " head");
            recompute_and_backward(mtp_layer, at);
            for (auto it = mtp_front.rbegin(); it != mtp_front.rend(); ++it) backward_kernel(*it, at);
          }
          const auto head = head_forward(m, sh);
          for (auto it = head.rbegin(); it != head.rend(); ++it) backward_kernel(*it, "head");
        }
        for (int i = first + layers - 1; i >= first; --i) {
          const auto ks = layer_forward(m, i, sh);
          const std::string at = "layer " + std::to_string(i);
          if (gather_backward && !(head_first && i == first + layers - 1)) gather(i, " (backward)");
          const auto start = static_cast<std::uint32_t>(rp.ops.size());
          marking_layer = marking == &bwd_marks;
          recompute_and_backward(ks, at);
          marking_layer = false;
          layer_done[static_cast<std::size_t>(i)] = b.last();
          layer_starts.push_back(start);
          if (scatter_each && !split) {
            for (auto id : over_dp(Op::kReduceScatter, p.grad_bytes, params_of(i), expert_params_of(i),
                                   StreamKind::kDataParallel, "ZeRO reduce-scatter " + at, {b.last()})) {
              grad_scatters.push_back(id);
            }
          }
        }
        last_backward = b.last();
      }
      finish_pass(k);
    }

    // Data parallelism (ZeRO 0/1): a bucket per layer as its last backward ends (last layer first).
    const auto [dense, expert] = rank_params(m, p, stage);
    std::vector<std::uint32_t> buckets = grad_scatters;
    if (any_dp && !scatter_each) {
      const Op op = p.zero >= 1 ? Op::kReduceScatter : Op::kAllReduce;
      for (auto h = held.rbegin(); h != held.rend(); ++h) {
        for (int i = h->first + h->count - 1; i >= h->first; --i) {
          const std::uint32_t after = p.overlap_grad_reduce ? layer_done[static_cast<std::size_t>(i)] : last_backward;
          for (auto id : over_dp(op, p.grad_bytes, params_of(i), expert_params_of(i), StreamKind::kDataParallel,
                                 std::string(op == Op::kReduceScatter ? "DP reduce-scatter" : "DP all-reduce") +
                                     " layer " + std::to_string(i),
                                 {after})) {
            buckets.push_back(id);
          }
        }
      }
    }
    if (embedding_sync) {
      std::vector<std::uint32_t> after = buckets;
      after.push_back(last_backward);
      buckets.push_back(b.collective(embedding_group, Op::kAllReduce, p.grad_bytes * pc.embedding / p.tp,
                                     StreamKind::kDataParallel, "embedding all-reduce (first and last stage)", after));
    }
    // The optimizer over this rank's shard: reads gradients, master weights and moments,
    // writes weights and moments.
    const double shard = p.zero >= 1 ? dense / p.weight_shards() + expert / p.expert_weight_shards() : dense + expert;
    for (auto d : buckets) b.gate(d);
    b.gate(last_backward);
    const auto adam = b.compute(optimizer_kernel(p, shard));
    rp.ops[adam].optimizer = true;
    if (p.fp8_gather && p.weight_copies() > 1) {
      // torchao's precompute_float8_dynamic_scale_for_fsdp after the optimizer: one all-reduce
      // of every Float8 linear's amax (fp32) over the weights' shards.
      int linears = 0;
      for (const Held& h : held) {
        for (int i = h.first; i < h.first + h.count; ++i) linears += fp8_linears(m, p, i);
      }
      if (linears > 0) b.collective(dp_group, Op::kAllReduce, 4.0 * linears, StreamKind::kCompute, "Float8 amax all-reduce (FSDP scales)", {adam});
    }
    if (p.zero >= 1 && p.zero <= 2 && !p.overlap_param_gather) {  // ZeRO-3 gathers them layer by layer instead
      over_dp(Op::kAllGather, kWeightBytesPerParam, dense, expert, StreamKind::kCompute, "DP all-gather (ZeRO weights)", {});
    }
  }
  return prog;
}

}  // namespace wallsim::parallelism
