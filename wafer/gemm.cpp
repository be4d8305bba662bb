#include "wafer/gemm.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace wallsim::wafer {

std::string to_string(GemmAlgo a) {
  switch (a) {
    case GemmAlgo::kSumma: return "summa";
    case GemmAlgo::kCannon: return "cannon";
    case GemmAlgo::kMeshGemm: return "meshgemm";
  }
  return "?";
}

const std::vector<GemmAlgo>& gemm_algos() {
  static const std::vector<GemmAlgo> all = {GemmAlgo::kSumma, GemmAlgo::kCannon, GemmAlgo::kMeshGemm};
  return all;
}

int gemm_routes(GemmAlgo a) {
  switch (a) {
    case GemmAlgo::kSumma: return 2;
    case GemmAlgo::kCannon: return 6;
    case GemmAlgo::kMeshGemm: return 8;
  }
  return 0;
}

GemmResult gemm_on_grid(const MeshSpec& m, GemmAlgo a, GemmShape g, int p) {
  if (p < 1 || p > std::min(m.x, m.y)) {
    throw Error("--grid", std::to_string(p) + " does not fit the " + std::to_string(m.x) + "x" + std::to_string(m.y) +
                              " mesh");
  }
  if (g.rows < 1 || g.depth < 1 || g.cols < 1) throw Error("--gemm", "the matrix sizes must be positive");
  GemmResult r;
  r.algo = a;
  r.grid = p;
  auto split = [p](long long x) { return static_cast<double>((x + p - 1) / p); };
  const double bm = split(g.rows), bk = split(g.depth), bn = split(g.cols);
  r.block = static_cast<long long>(std::max({bm, bk, bn}));
  r.routes = gemm_routes(a);
  const double a_bytes = 2.0 * bm * bk, b_bytes = 2.0 * bk * bn, c_bytes = 2.0 * bm * bn;  // bf16
  // Own A, B and C blocks, and a receive buffer for each of A and B (double buffering).
  r.sram_per_core = Bytes::of(2.0 * a_bytes + 2.0 * b_bytes + c_bytes);
  if (m.routing_entries > 0 && r.routes > m.routing_entries) {
    r.why = to_string(a) + " needs " + std::to_string(r.routes) + " routes per router; the wafer's routers hold " +
            std::to_string(m.routing_entries);
    return r;
  }
  if (m.sram.value() > 0 && r.sram_per_core.value() > m.sram.value()) {
    r.why = "blocks of up to " + std::to_string(r.block) + "x" + std::to_string(r.block) + " need " +
            to_string(r.sram_per_core) + " per core; a core has " + to_string(m.sram);
    return r;
  }
  if (!(m.flops.value() > 0)) throw Error("cluster.gpu.bf16_dense", "missing: the wafer's compute is needed for a GEMM");
  const double h = m.hop.value(), ov = m.overhead.value(), bw = m.link.value();
  const double compute = 2.0 * bm * bk * bn / m.flops.value();
  const double send = std::max(a_bytes, b_bytes) / bw;  // A along rows and B along columns, at once
  auto comm_of_step = [&](int k) {  // the step's slowest message: distance and size
    switch (a) {
      case GemmAlgo::kSumma: return ov + std::max(k, p - 1 - k) * h + send;
      case GemmAlgo::kCannon: return ov + (p > 1 ? (p - 1) * h : 0.0) + send;
      case GemmAlgo::kMeshGemm: return ov + (p > 2 ? 2.0 : p > 1 ? 1.0 : 0.0) * h + send;
    }
    return 0.0;
  };
  auto hops_of_step = [&](int k) {
    switch (a) {
      case GemmAlgo::kSumma: return std::max(k, p - 1 - k) * h;
      case GemmAlgo::kCannon: return (p - 1) * h;
      case GemmAlgo::kMeshGemm: return (p > 2 ? 2.0 : p - 1.0) * h;
    }
    return 0.0;
  };
  double t = 0.0, hops = 0.0;
  if (a != GemmAlgo::kSumma && p > 1) {  // the skew
    t += ov + (p - 1) * h + (p - 1) * send;
    hops += (p - 1) * h;
  }
  if (p == 1) {
    t += compute;
  } else {
    t += comm_of_step(0);  // the first step's blocks, before any compute
    hops += hops_of_step(0);
    for (int k = 1; k < p; ++k) {
      t += std::max(compute, comm_of_step(k));
      hops += hops_of_step(k);
    }
    t += compute;  // the last step's
  }
  // Link crossings: SUMMA's multicast trees cross the p-1 links of each row (column) once per
  // step; Cannon's p-1 one-hop shifts and its (p-1)-hop wrap-around, and MeshGEMM's folded
  // ring (every directed link of the row once), cross 2(p-1) links per row per step; the skew
  // moves row i's blocks i links (p(p-1)/2 per row).
  const double rows = p, per_line = a == GemmAlgo::kSumma ? p - 1.0 : 2.0 * (p - 1.0);
  double crossings = p * rows * per_line * (a_bytes + b_bytes);
  if (a != GemmAlgo::kSumma) crossings += rows * p * (p - 1.0) / 2.0 * (a_bytes + b_bytes);
  r.link_bytes = Bytes::of(crossings);
  r.valid = true;
  r.time = Seconds::of(t);
  r.compute = Seconds::of(p * compute);
  r.comm = Seconds::of(std::max(0.0, t - p * compute));
  r.hop_latency = Seconds::of(hops);
  r.tflops = 2.0 * static_cast<double>(g.rows) * static_cast<double>(g.depth) * static_cast<double>(g.cols) / t / 1e12;
  return r;
}

GemmResult gemm(const MeshSpec& m, GemmAlgo a, GemmShape g) {
  GemmResult best;
  best.algo = a;
  best.routes = gemm_routes(a);
  std::string last_why;
  const int top = static_cast<int>(std::min<long long>(std::min(m.x, m.y), std::max({g.rows, g.depth, g.cols})));
  for (int p = 1; p <= top; ++p) {
    const GemmResult r = gemm_on_grid(m, a, g, p);
    if (!r.valid) {
      last_why = r.why;
      continue;
    }
    if (!best.valid || r.time.value() < best.time.value()) best = r;
  }
  if (!best.valid) best.why = last_why.empty() ? "no grid fits" : last_why;
  return best;
}

GemmResult best_gemm(const MeshSpec& m, GemmShape g) {
  GemmResult best;
  std::string why;
  for (auto a : gemm_algos()) {
    const GemmResult r = gemm(m, a, g);
    if (!r.valid) {
      if (why.find(r.why) == std::string::npos) why += (why.empty() ? "" : "; ") + r.why;
    } else if (!best.valid || r.time.value() < best.time.value()) {
      best = r;
    }
  }
  if (!best.valid) best.why = why;
  return best;
}

}  // namespace wallsim::wafer
