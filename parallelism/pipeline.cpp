#include "parallelism/pipeline.hpp"

#include <algorithm>
#include <deque>

namespace wallsim::parallelism {

std::vector<PipeOp> stage_order(PipeSchedule s, int pp, int vpp, int m, int stage, int group) {
  std::vector<PipeOp> ops;
  const int v = s == PipeSchedule::kInterleaved ? vpp : 1;
  if (s == PipeSchedule::kGpipe) {
    for (int j = 0; j < m; ++j) ops.push_back({Pass::kForward, j, 0});
    for (int j = 0; j < m; ++j) ops.push_back({Pass::kBackward, j, 0});
    return ops;
  }
  // Virtual micro-batch k -> (micro-batch, chunk), Megatron-Core's interleaved order: the
  // micro-batches go in groups of G (pp by default), each group through chunk 0, then chunk
  // 1, ...; the last group holds what is left, so that counts that are not multiples of pp
  // run (Llama 3, section 3.3.2) when every group has at least pp (plan.cpp checks).
  const int G = v > 1 && group > 0 ? group : pp;
  const int total = m * v;
  std::vector<std::pair<int, int>> order;  // (micro-batch, position of its chunk) per k
  order.reserve(static_cast<std::size_t>(total));
  for (int g = 0; g < m; g += G) {
    const int size = g + G >= m ? m - g : G;
    for (int c = 0; c < v; ++c) {
      for (int j = 0; j < size; ++j) order.emplace_back(g + j, c);
    }
  }
  auto fwd = [&](int k) {
    const auto [mb, c] = order[static_cast<std::size_t>(k)];
    return PipeOp{Pass::kForward, mb, c};
  };
  auto bwd = [&](int k) {
    const auto [mb, c] = order[static_cast<std::size_t>(k)];
    return PipeOp{Pass::kBackward, mb, v - 1 - c};
  };
  int warmup = v == 1 ? pp - stage - 1 : (pp - stage - 1) * 2 + (v - 1) * G;
  warmup = std::min(warmup, total);
  const bool zb = s == PipeSchedule::kZeroBubble;
  int deferred = zb ? pp - stage - 1 : 0;
  std::deque<PipeOp> pending_w;
  auto backward = [&](int k) {
    PipeOp b = bwd(k);
    ops.push_back(b);
    if (!zb) return;
    pending_w.push_back({Pass::kWeight, b.micro_batch, b.chunk});
    if (deferred > 0) {
      --deferred;
    } else {
      ops.push_back(pending_w.front());
      pending_w.pop_front();
    }
  };
  for (int k = 0; k < warmup; ++k) ops.push_back(fwd(k));
  int next_b = 0;
  for (int k = warmup; k < total; ++k) {
    ops.push_back(fwd(k));
    backward(next_b++);
  }
  while (next_b < total) {
    // Cool-down: a deferred W fills the wait for the next B from downstream.
    if (!pending_w.empty()) {
      ops.push_back(pending_w.front());
      pending_w.pop_front();
    }
    backward(next_b++);
  }
  while (!pending_w.empty()) {
    ops.push_back(pending_w.front());
    pending_w.pop_front();
  }
  return ops;
}

int peak_in_flight(PipeSchedule s, int pp, int vpp, int m, int stage, int group) {
  int live = 0, peak = 0;
  for (const auto& op : stage_order(s, pp, vpp, m, stage, group)) {
    if (op.pass == Pass::kForward) peak = std::max(peak, ++live);
    // Zero-bubble frees a micro-batch's activations after its W; the others after B.
    const bool frees = s == PipeSchedule::kZeroBubble ? op.pass == Pass::kWeight : op.pass == Pass::kBackward;
    if (frees) --live;
  }
  return peak;
}

}  // namespace wallsim::parallelism
