#include "parallelism/program.hpp"

#include <map>
#include <optional>
#include <tuple>

#include "core/error.hpp"
#include "parallelism/pipeline.hpp"

namespace wallsim::parallelism {

Program pipeline_program(PipeSchedule schedule, int pp, int vpp, int micro_batches, int dp,
                         const std::vector<topology::NodeId>& gpus, const PassCosts& costs, int group) {
  if (pp < 1 || dp < 1 || micro_batches < 1 || vpp < 1) throw Error("parallel", "pp, dp, vpp and micro-batches are at least 1");
  if (gpus.size() != static_cast<std::size_t>(pp) * static_cast<std::size_t>(dp)) {
    throw Error("parallel", "the pipeline needs pp x dp = " + std::to_string(pp * dp) + " GPUs");
  }
  const PipeMap map(schedule, pp, vpp);
  const bool dual = schedule == PipeSchedule::kDualPipe;
  Program prog;
  auto rank = [dp](int stage, int replica) { return static_cast<std::uint32_t>(stage * dp + replica); };
  prog.ranks.resize(gpus.size());
  for (std::size_t r = 0; r < gpus.size(); ++r) prog.ranks[r].gpu = gpus[r];
  // Gradients are all-reduced over the stage's replicas; under DualPipe over both copies of
  // its weights (stage s and its mirror pp-1-s hold the same two stages): one group per pair.
  auto reducing = [&](int s) { return dual ? std::min(s, pp - 1 - s) : s; };
  for (int s = 0; s < pp; ++s) {
    std::vector<std::uint32_t> g;
    for (int d = 0; d < dp; ++d) g.push_back(rank(s, d));
    if (dual) {
      for (int d = 0; d < dp; ++d) g.push_back(rank(pp - 1 - s, d));
    }
    prog.groups.push_back(std::move(g));
  }
  // A pass's place on the data's path (PipeMap): its input comes from the virtual stage before
  // (forward) or after (backward).
  // A transfer's tag names the pass it feeds: direction, micro-batch, receiving virtual stage.
  auto tag = [&](Pass pass, int mb, int to_virtual) {
    return static_cast<std::uint32_t>((mb * map.count() + to_virtual) * 2 + (pass == Pass::kForward ? 0 : 1));
  };
  for (int s = 0; s < pp; ++s) {
    for (int d = 0; d < dp; ++d) {
      auto& ops = prog.ranks[rank(s, d)].ops;
      std::uint32_t last_backward = 0;
      bool any_backward = false;
      const auto order = stage_order(schedule, pp, vpp, micro_batches, s, group);
      const auto leaves = output_after(schedule, order);
      std::vector<std::uint32_t> done_at(order.size(), 0);
      // The input of pass k: from the previous virtual stage (forward) or the next (backward).
      std::vector<std::optional<std::uint32_t>> received(order.size());
      auto receive = [&](std::size_t k) {
        const PipeOp& po = order[k];
        const PipePlace place = map.at(po.chunk, s);
        const bool fwd = po.pass == Pass::kForward;
        if (po.pass == Pass::kWeight || received[k] || (fwd ? place.first : place.last)) return;
        const int from = fwd ? map.prev(place.virtual_stage) : map.next(place.virtual_stage);
        if (map.stage_of(from) == s) return;  // ZB-V's turn: on this rank, earlier on its stream
        ProgramOp r;
        r.kind = ProgramOp::Kind::kRecv;
        r.stream = StreamKind::kPipelineRecv;
        r.peer = rank(map.stage_of(from), d);
        r.tag = tag(po.pass, po.micro_batch, place.virtual_stage);
        r.name = std::string(fwd ? "recv activation" : "recv gradient") + " mb " + std::to_string(po.micro_batch);
        ops.push_back(std::move(r));
        received[k] = static_cast<std::uint32_t>(ops.size() - 1);
      };
      for (std::size_t k = 0; k < order.size(); ++k) {
        const PipeOp& po = order[k];
        ProgramOp c;
        c.kind = ProgramOp::Kind::kCompute;
        c.stream = StreamKind::kCompute;
        receive(k);
        if (received[k]) c.deps.push_back(*received[k]);
        if (po.with_next && k + 1 < order.size()) {  // an overlapped pair starts when both have their inputs
          receive(k + 1);
          if (received[k + 1]) c.deps.push_back(*received[k + 1]);
        }
        c.duration = po.pass == Pass::kForward ? costs.forward : po.pass == Pass::kBackward ? costs.backward : costs.weight;
        c.name = std::string(po.pass == Pass::kForward ? "forward" : po.pass == Pass::kBackward ? "backward" : "weight") +
                 " mb " + std::to_string(po.micro_batch) + " chunk " + std::to_string(po.chunk);
        ops.push_back(std::move(c));
        done_at[k] = static_cast<std::uint32_t>(ops.size() - 1);
        if (po.pass == Pass::kBackward || po.pass == Pass::kWeight) {
          last_backward = done_at[k];
          any_backward = true;
        }
        // The outputs that leave once this op is done, in pass order.
        for (std::size_t j = 0; j <= k; ++j) {
          if (leaves[j] != k || order[j].pass == Pass::kWeight) continue;
          const PipeOp& out = order[j];
          const PipePlace place = map.at(out.chunk, s);
          const bool fwd = out.pass == Pass::kForward;
          if (fwd ? place.last : place.first) continue;
          const int to = fwd ? map.next(place.virtual_stage) : map.prev(place.virtual_stage);
          if (map.stage_of(to) == s) continue;
          ProgramOp snd;
          snd.kind = ProgramOp::Kind::kSend;
          snd.stream = StreamKind::kPipelineSend;
          snd.peer = rank(map.stage_of(to), d);
          snd.tag = tag(out.pass, out.micro_batch, to);
          snd.bytes = costs.activation;
          snd.deps = {done_at[k]};
          snd.name = std::string(fwd ? "send activation" : "send gradient") + " mb " + std::to_string(out.micro_batch);
          ops.push_back(std::move(snd));
        }
      }
      if ((dp > 1 || dual) && any_backward) {
        ProgramOp ar;
        ar.kind = ProgramOp::Kind::kCollective;
        ar.stream = StreamKind::kDataParallel;
        ar.group = static_cast<std::uint32_t>(reducing(s));
        ar.op = collectives::Op::kAllReduce;
        ar.algo = collectives::Algo::kRing;
        ar.bytes = dual ? costs.gradients * 2.0 : costs.gradients;  // both stages' under DualPipe
        ar.deps = {last_backward};
        ar.name = "data-parallel all-reduce";
        ops.push_back(std::move(ar));
      }
    }
  }
  return prog;
}

}  // namespace wallsim::parallelism
