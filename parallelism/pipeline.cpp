#include "parallelism/pipeline.hpp"

#include <algorithm>
#include <deque>

namespace wallsim::parallelism {

PipeMap::PipeMap(PipeSchedule s, int pp, int vpp)
    : dual_(s == PipeSchedule::kDualPipe),
      v_shape_(s == PipeSchedule::kZeroBubbleV),
      pp_(pp),
      v_(s == PipeSchedule::kInterleaved ? vpp : v_shape_ ? 2 : 1) {}

PipePlace PipeMap::at(int chunk, int stage) const {
  if (v_shape_) {  // down the ranks in chunk 0, back up in chunk 1
    const int vs = chunk == 0 ? stage : 2 * pp_ - 1 - stage;
    return {vs, vs / pp_, vs % pp_, vs == 0, vs == 2 * pp_ - 1};
  }
  if (!dual_) {
    const int vs = chunk * pp_ + stage;
    return {vs, chunk, stage, vs == 0, vs == v_ * pp_ - 1};
  }
  // The first half of the ranks run the forward direction in phase 0, the second half in phase 1.
  const int direction = stage < pp_ / 2 ? chunk : 1 - chunk;
  const int model_stage = direction == 0 ? stage : pp_ - 1 - stage;
  return {direction * pp_ + model_stage, 0, model_stage, model_stage == 0, model_stage == pp_ - 1};
}

int PipeMap::stage_of(int vs) const {
  if (v_shape_) return vs < pp_ ? vs : 2 * pp_ - 1 - vs;
  if (!dual_) return vs % pp_;
  const int direction = vs / pp_, model_stage = vs % pp_;
  return direction == 0 ? model_stage : pp_ - 1 - model_stage;
}

namespace {
/// DualPipe.step's order for one rank (deepseek-ai/DualPipe, dualpipe/dualpipe.py): steps 1-8,
/// with its overlapped pairs and the sends it defers past the next chunk.
std::vector<PipeOp> dualpipe_order(int pp, int m, int stage) {
  std::vector<PipeOp> ops;
  const int half = pp / 2, hr = std::min(stage, pp - 1 - stage), hm = m / 2;
  const bool middle = hr == half - 1;
  auto direction = [&](int c) { return stage < half ? c : 1 - c; };
  int next_f[2] = {0, 0}, next_b[2] = {0, 0};
  std::deque<PipeOp> deferred;
  auto F = [&](int c, bool send_later = false) {
    ops.push_back({Pass::kForward, direction(c) * hm + next_f[c]++, c, false, send_later});
  };
  auto B = [&](int c, bool zb) {
    const PipeOp b{Pass::kBackward, direction(c) * hm + next_b[c]++, c};
    ops.push_back(b);
    const PipeOp w{Pass::kWeight, b.micro_batch, c};
    if (zb) {
      deferred.push_back(w);
    } else {
      ops.push_back(w);
    }
  };
  auto FB = [&](int c0, int c1) {  // _forward_backward_chunk(c0, c1)
    F(c0);
    ops.back().with_next = true;
    B(c1, false);
  };
  auto W = [&] {
    ops.push_back(deferred.front());
    deferred.pop_front();
  };
  for (int i = 0; i < (half - hr - 1) * 2; ++i) F(0);  // 1: nF0
  for (int i = 0; i < hr + 1; ++i) {                     // 2: nF0F1
    F(0, !middle);  // sent after F1, but on the middle ranks
    F(1, middle && i == hr);  // the middle ranks' last one leaves after step 4's first F0
  }
  for (int i = 0; i < half - hr - 1; ++i) {  // 3: nB1W1F1
    B(1, true);
    W();
    F(1);
  }
  for (int i = 0; i < hm - pp + hr + 1; ++i) {  // 4: nF0B1F1B0
    if (i == 0 && middle) {  // not overlapped, to shrink the bubble; F0 leaves after B1
      F(0, true);
      B(1, false);
    } else {
      FB(0, 1);
    }
    FB(1, 0);
  }
  for (int i = 0; i < half - hr - 1; ++i) {  // 5: nB1F1B0
    B(1, false);
    FB(1, 0);
  }
  bool zb = false;  // 6: nB1B0, the second half with zero bubble
  for (int i = 0; i < hr + 1; ++i) {
    if (i == (hr + 1) / 2 && hr % 2 == 1) zb = true;
    B(1, zb);
    if (i == (hr + 1) / 2 && hr % 2 == 0) zb = true;
    B(0, zb);
  }
  for (int i = 0; i < half - hr - 1; ++i) {  // 7: nWB0
    W();
    B(0, true);
  }
  while (!deferred.empty()) W();  // 8: nW
  return ops;
}

/// ZB-V's order for one rank (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR'24, sec. 6;
/// as PyTorch's ScheduleZBVZeroBubble builds it): chunk 0 is virtual stage `stage`, chunk 1
/// virtual stage 2·pp-1-stage. It is laid out for max(2·pp-1, m) micro-batches, the ones past
/// m then dropped. Warm-up: 2(pp-stage)-1 forwards of chunk 0, `stage` pairs F1 F0, pp-stage
/// triples F1 B1 W1; steady: F0 B0 W0 F1 B1 W1 until both chunks have every forward;
/// cool-down: `stage` pairs B0 B1, pp-stage pairs B0 W0, then the W passes left (chunk 1's first).
std::vector<PipeOp> zbv_order(int pp, int m, int stage) {
  const int n = std::max(2 * pp - 1, m);
  std::vector<PipeOp> ops;
  int f[2] = {0, 0}, b[2] = {0, 0}, w[2] = {0, 0};
  auto F = [&](int c) { ops.push_back({Pass::kForward, f[c]++, c}); };
  auto B = [&](int c) { ops.push_back({Pass::kBackward, b[c]++, c}); };
  auto W = [&](int c) { ops.push_back({Pass::kWeight, w[c]++, c}); };
  for (int i = 0; i < 2 * (pp - stage) - 1; ++i) F(0);
  for (int i = 0; i < stage; ++i) {
    F(1);
    F(0);
  }
  for (int i = 0; i < pp - stage; ++i) {
    F(1);
    B(1);
    W(1);
  }
  while (f[1] < f[0] || f[0] < n) {
    if (f[0] < n) F(0);
    B(0);
    W(0);
    F(1);
    B(1);
    W(1);
  }
  for (int i = 0; i < stage; ++i) {
    B(0);
    B(1);
  }
  for (int i = 0; i < pp - stage; ++i) {
    B(0);
    W(0);
  }
  while (w[1] < b[1]) W(1);
  while (w[0] < b[0]) W(0);
  std::erase_if(ops, [m](const PipeOp& op) { return op.micro_batch >= m; });
  return ops;
}
}  // namespace

namespace {
/// Forwards a 1F1B-family stage runs before its first backward: pp - stage - 1 (interleaved:
/// twice that, plus a group for every chunk but the last), one more for combined 1F1B (so
/// that each steady-state forward and the backward after it are independent, Megatron-Core's
/// get_pp_rank_microbatches), at most every forward.
int warmup_forwards(int v, int pp, int group, int total, int stage, bool pairs) {
  int warmup = v == 1 ? pp - stage - 1 : (pp - stage - 1) * 2 + (v - 1) * group;
  if (pairs) ++warmup;
  return std::min(warmup, total);
}
}  // namespace

std::vector<PipeOp> stage_order(PipeSchedule s, int pp, int vpp, int m, int stage, int group, bool pairs) {
  if (s == PipeSchedule::kDualPipe) return dualpipe_order(pp, m, stage);
  if (s == PipeSchedule::kZeroBubbleV) return zbv_order(pp, m, stage);
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
  const bool zb = s == PipeSchedule::kZeroBubble;
  ops.reserve(static_cast<std::size_t>(total) * (zb ? 3 : 2));
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
  const int warmup = warmup_forwards(v, pp, G, total, stage, pairs);
  int deferred = zb ? pp - stage - 1 : 0;
  std::vector<PipeOp> pending_w;  // deferred W passes, the first not yet run at `next_w`
  std::size_t next_w = 0;
  auto run_w = [&] { ops.push_back(pending_w[next_w++]); };
  auto backward = [&](int k) {
    PipeOp b = bwd(k);
    ops.push_back(b);
    if (!zb) return;
    pending_w.push_back({Pass::kWeight, b.micro_batch, b.chunk});
    if (deferred > 0) {
      --deferred;
    } else {
      run_w();
    }
  };
  for (int k = 0; k < warmup; ++k) ops.push_back(fwd(k));
  int next_b = 0;
  for (int k = warmup; k < total; ++k) {
    ops.push_back(fwd(k));
    ops.back().with_next = pairs;
    backward(next_b++);
  }
  while (next_b < total) {
    // Cool-down: a deferred W fills the wait for the next B from downstream.
    if (next_w < pending_w.size()) run_w();
    backward(next_b++);
  }
  while (next_w < pending_w.size()) run_w();
  return ops;
}

std::vector<std::size_t> output_after(PipeSchedule s, const std::vector<PipeOp>& ops) {
  std::vector<std::size_t> at(ops.size());
  for (std::size_t k = 0; k < ops.size(); ++k) at[k] = k;
  if (s != PipeSchedule::kDualPipe) {
    for (std::size_t k = 0; k + 1 < ops.size(); ++k) {
      if (ops[k].with_next) at[k] = k + 1;
    }
    return at;
  }
  // The end of the chunk that starts at k: a backward with its W right behind it ends there.
  auto whole = [&](std::size_t k) {
    const bool w = k + 1 < ops.size() && ops[k].pass == Pass::kBackward && ops[k + 1].pass == Pass::kWeight &&
                   ops[k + 1].micro_batch == ops[k].micro_batch && ops[k + 1].chunk == ops[k].chunk;
    return w ? k + 1 : k;
  };
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].pass == Pass::kWeight) continue;
    at[k] = whole(k);
    if (ops[k].pass == Pass::kForward && (ops[k].with_next || ops[k].send_later) && k + 1 < ops.size()) at[k] = whole(k + 1);
  }
  // A pair's backward leaves with it (its own end already).
  return at;
}

int peak_in_flight(PipeSchedule s, int pp, int vpp, int m, int stage, int group, bool pairs) {
  // GPipe holds every micro-batch; 1F1B and interleaved hold their warm-up forwards and the
  // steady state's next one (each forward there runs before the backward that frees one).
  if (s == PipeSchedule::kGpipe) return m;
  if (s == PipeSchedule::kOneFOneB || s == PipeSchedule::kInterleaved) {
    const int v = s == PipeSchedule::kInterleaved ? vpp : 1;
    const int total = m * v;
    const int warmup = warmup_forwards(v, pp, v > 1 && group > 0 ? group : pp, total, stage, pairs);
    return warmup < total ? warmup + 1 : total;
  }
  int live = 0, peak = 0;
  for (const auto& op : stage_order(s, pp, vpp, m, stage, group, pairs)) {
    if (op.pass == Pass::kForward) peak = std::max(peak, ++live);
    // Zero-bubble and DualPipe free a micro-batch's activations after its W; the others after B.
    const bool w = s == PipeSchedule::kZeroBubble || s == PipeSchedule::kZeroBubbleV || s == PipeSchedule::kDualPipe;
    const bool frees = w ? op.pass == Pass::kWeight : op.pass == Pass::kBackward;
    if (frees) --live;
  }
  return peak;
}

}  // namespace wallsim::parallelism
