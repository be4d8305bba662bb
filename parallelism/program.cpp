#include "parallelism/program.hpp"

#include <map>
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
  const int v = schedule == PipeSchedule::kInterleaved ? vpp : 1;
  Program prog;
  auto rank = [dp](int stage, int replica) { return static_cast<std::uint32_t>(stage * dp + replica); };
  prog.ranks.resize(gpus.size());
  for (std::size_t r = 0; r < gpus.size(); ++r) prog.ranks[r].gpu = gpus[r];
  for (int s = 0; s < pp; ++s) {
    std::vector<std::uint32_t> g;
    for (int d = 0; d < dp; ++d) g.push_back(rank(s, d));
    prog.groups.push_back(std::move(g));
  }
  // A pass's position in the model: (chunk, stage) -> virtual stage c*pp + s. Its input comes
  // from the virtual stage before (forward) or after (backward). Tags name the pass.
  const int last_virtual = v * pp - 1;
  // A transfer's tag names the pass it feeds: direction, micro-batch, receiving virtual stage.
  auto tag = [&](Pass pass, int mb, int to_virtual) {
    return static_cast<std::uint32_t>((mb * v * pp + to_virtual) * 2 + (pass == Pass::kForward ? 0 : 1));
  };
  for (int s = 0; s < pp; ++s) {
    for (int d = 0; d < dp; ++d) {
      auto& ops = prog.ranks[rank(s, d)].ops;
      std::uint32_t last_backward = 0;
      bool any_backward = false;
      for (const PipeOp& po : stage_order(schedule, pp, vpp, micro_batches, s, group)) {
        const int vs = po.chunk * pp + s;
        ProgramOp c;
        c.kind = ProgramOp::Kind::kCompute;
        c.stream = StreamKind::kCompute;
        if (po.pass != Pass::kWeight) {
          // The input: from the previous virtual stage (forward) or the next (backward).
          const bool fwd = po.pass == Pass::kForward;
          const bool needs = fwd ? vs > 0 : vs < last_virtual;
          if (needs) {
            const int from = fwd ? vs - 1 : vs + 1;
            ProgramOp r;
            r.kind = ProgramOp::Kind::kRecv;
            r.stream = StreamKind::kPipelineRecv;
            r.peer = rank(from % pp, d);
            r.tag = tag(po.pass, po.micro_batch, vs);
            r.name = std::string(fwd ? "recv activation" : "recv gradient") + " mb " + std::to_string(po.micro_batch);
            ops.push_back(std::move(r));
            c.deps.push_back(static_cast<std::uint32_t>(ops.size() - 1));
          }
        }
        c.duration = po.pass == Pass::kForward ? costs.forward : po.pass == Pass::kBackward ? costs.backward : costs.weight;
        c.name = std::string(po.pass == Pass::kForward ? "forward" : po.pass == Pass::kBackward ? "backward" : "weight") +
                 " mb " + std::to_string(po.micro_batch) + " chunk " + std::to_string(po.chunk);
        ops.push_back(std::move(c));
        const auto done = static_cast<std::uint32_t>(ops.size() - 1);
        if (po.pass == Pass::kBackward || po.pass == Pass::kWeight) {
          last_backward = done;
          any_backward = true;
        }
        if (po.pass == Pass::kWeight) continue;
        const bool fwd = po.pass == Pass::kForward;
        const bool sends = fwd ? vs < last_virtual : vs > 0;
        if (!sends) continue;
        const int to = fwd ? vs + 1 : vs - 1;
        ProgramOp snd;
        snd.kind = ProgramOp::Kind::kSend;
        snd.stream = StreamKind::kPipelineSend;
        snd.peer = rank(to % pp, d);
        snd.tag = tag(po.pass, po.micro_batch, to);
        snd.bytes = costs.activation;
        snd.deps = {done};
        snd.name = std::string(fwd ? "send activation" : "send gradient") + " mb " + std::to_string(po.micro_batch);
        ops.push_back(std::move(snd));
      }
      if (dp > 1 && any_backward) {
        ProgramOp ar;
        ar.kind = ProgramOp::Kind::kCollective;
        ar.stream = StreamKind::kDataParallel;
        ar.group = static_cast<std::uint32_t>(s);
        ar.op = collectives::Op::kAllReduce;
        ar.algo = collectives::Algo::kRing;
        ar.bytes = costs.gradients;
        ar.deps = {last_backward};
        ar.name = "data-parallel all-reduce";
        ops.push_back(std::move(ar));
      }
    }
  }
  return prog;
}

}  // namespace wallsim::parallelism
