#include "wafer/mesh.hpp"

#include <algorithm>
#include <cmath>

#include "core/config.hpp"
#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "topology/families.hpp"

namespace wallsim::wafer {
namespace {

using collectives::Phase;
using collectives::Schedule;
using collectives::Transfer;
using topology::NodeId;

NodeId at(const MeshSpec& m, int column, int row) { return static_cast<NodeId>(row * m.x + column); }

/// One step of the folded ring on row `row` (or column, when `vertical`), `bytes` per message.
void ring_step(const MeshSpec& m, int n, int line, bool vertical, double bytes, Phase& ph) {
  const auto order = folded_ring(n);
  for (int i = 0; i < n; ++i) {
    const int a = order[static_cast<std::size_t>(i)], b = order[static_cast<std::size_t>((i + 1) % n)];
    ph.transfers.push_back({vertical ? at(m, line, a) : at(m, a, line), vertical ? at(m, line, b) : at(m, b, line),
                            Bytes::of(bytes)});
  }
}

/// Time of `steps` folded-ring steps over n units moving `bytes` each.
double ring_steps(const MeshSpec& m, int n, double steps, double bytes) {
  if (n < 2) return 0.0;
  const double hops = n == 2 ? 1.0 : 2.0;
  return steps * (m.overhead.value() + hops * m.hop.value() + bytes / m.link.value());
}

void check_line(const MeshSpec& m, int n, const char* what) {
  if (n < 1 || n > std::max(m.x, m.y)) {
    throw Error(what, std::to_string(n) + " units do not fit a row of the " + std::to_string(m.x) + "x" +
                          std::to_string(m.y) + " mesh");
  }
}

}  // namespace

topology::Topology mesh_topology(const MeshSpec& m) {
  topology::WaferMeshParams p;
  p.x = m.x;
  p.y = m.y;
  p.link = {m.link, m.hop, {}};
  return topology::build_wafer_mesh(p);
}

Seconds flow_time(const MeshSpec& m, const topology::Topology& t, const collectives::Schedule& s) {
  const auto net = collectives::NetworkModel::build("flow", "network");
  collectives::CostParams c;
  c.overhead = m.overhead;
  return net->time(t, s, c);
}

std::vector<int> folded_ring(int n) {
  std::vector<int> order;
  for (int i = 0; i < n; i += 2) order.push_back(i);
  for (int i = (n % 2 == 0 ? n - 1 : n - 2); i >= 1; i -= 2) order.push_back(i);
  return order;
}

MeshSpec mesh_of(const ClusterSpec& c) {
  if (c.gpu.cores <= 0) throw Error("cluster.gpu", "'" + c.gpu.name + "' is not a wafer-scale part (no cores)");
  if (!c.scale_out || c.scale_out->topology != "wafer-mesh") {
    throw Error("cluster.scale_out.topology", "a wafer's mesh is described by topology: wafer-mesh with dims");
  }
  const auto dims = parse_dims(c.scale_out->params.at("dims"));
  if (dims.size() != 2) throw Error("cluster.scale_out.dims", "a wafer mesh has two dimensions, like 750x994");
  MeshSpec m;
  m.name = c.gpu.name;
  m.x = dims[0];
  m.y = dims[1];
  m.link = c.scale_up.payload();
  m.hop = c.scale_up.latency;
  m.overhead = c.gpu.kernel_overhead;
  m.routing_entries = c.gpu.routing_entries;
  m.sram = c.gpu.sram_per_core;
  m.flops = FlopRate::of(c.gpu.bf16_dense.value() / static_cast<double>(c.gpu.cores));
  if (!(m.link.value() > 0.0)) throw Error("cluster.scale_up.bandwidth", "the on-wafer link needs a bandwidth");
  if (!(c.gpu.memory_bandwidth.value() > 0.0)) {
    throw Error("cluster.gpu.memory_bandwidth", "must be positive: the wafer's SRAM bandwidth times its element-wise kernels");
  }
  return m;
}

MeshSpec coarsen(const MeshSpec& m, int k) {
  if (k < 1 || m.x % k != 0 || m.y % k != 0) {
    throw Error("--tile", std::to_string(k) + " does not divide the mesh's " + std::to_string(m.x) + "x" +
                              std::to_string(m.y) + " cores");
  }
  MeshSpec t = m;
  t.x = m.x / k;
  t.y = m.y / k;
  t.tile = m.tile * k;
  t.link = m.link * static_cast<double>(k);
  t.hop = m.hop * static_cast<double>(k);
  t.overhead = m.overhead * static_cast<double>(k);
  t.sram = m.sram * static_cast<double>(k * k);
  t.flops = m.flops * static_cast<double>(k * k);
  return t;
}

Seconds row_allreduce(const MeshSpec& m, int n, Bytes s) {
  check_line(m, n, "row all-reduce");
  const double data = m.tile * s.value();  // the tile's rows, side by side
  return Seconds::of(ring_steps(m, n, 2.0 * (n - 1), data / n));
}

Seconds row_broadcast(const MeshSpec& m, int n, Bytes s, int* chunks) {
  check_line(m, n, "row broadcast");
  if (n < 2) return Seconds{};
  const double data = m.tile * s.value(), a = m.overhead.value() + m.hop.value(), bw = m.link.value();
  auto time = [&](double c) { return (n - 2 + c) * (a + data / (c * bw)); };
  // T(m) is convex in m with its minimum at sqrt((n-2) S / (B a)); try the integers around it.
  const double best = a > 0 ? std::sqrt(std::max(1.0, (n - 2) * data / (bw * a))) : 1e6;
  // A chunk is at least one wavelet: 32 bits of payload ([D] CSL data tasks take a u32 per
  // wavelet, Cerebras csl-examples).
  const double most = std::max(1.0, std::floor(data / 4.0));
  int pick = 1;
  for (double c : {std::floor(best), std::ceil(best), 1.0}) {
    c = std::clamp(c, 1.0, std::min(most, 1e6));
    if (time(c) < time(pick)) pick = static_cast<int>(c);
  }
  if (chunks != nullptr) *chunks = pick;
  return Seconds::of(time(pick));
}

Seconds allreduce_2d(const MeshSpec& m, Bytes s) {
  const double xc = static_cast<double>(m.x) * m.tile;  // cores along a row
  const double row = m.tile * s.value() / m.x;             // per step: the tile's rows' 1/x
  const double column = m.tile * (s.value() / xc) / m.y;   // per step: the tile's columns' chunks
  return Seconds::of(ring_steps(m, m.x, 2.0 * (m.x - 1), row) + ring_steps(m, m.y, 2.0 * (m.y - 1), column));
}

Schedule row_allreduce_schedule(const MeshSpec& m, int n, Bytes s) {
  check_line(m, n, "row all-reduce");
  Schedule sch;
  Phase ph;
  ph.repeat = 2.0 * (n - 1);
  ring_step(m, n, 0, false, m.tile * s.value() / n, ph);
  sch.phases.push_back(std::move(ph));
  return sch;
}

Schedule row_broadcast_schedule(const MeshSpec& m, int n, Bytes s, int chunks) {
  check_line(m, n, "row broadcast");
  Schedule sch;
  sch.chunks = static_cast<std::size_t>(chunks);
  const double piece = m.tile * s.value() / chunks;
  for (int step = 0; step < n - 2 + chunks; ++step) {
    Phase ph;
    for (int c = 0; c < chunks; ++c) {
      const int j = step - c;  // chunk c goes from j to j + 1
      if (j >= 0 && j < n - 1) ph.transfers.push_back({at(m, j, 0), at(m, j + 1, 0), Bytes::of(piece)});
    }
    sch.phases.push_back(std::move(ph));
  }
  return sch;
}

Schedule allreduce_2d_schedule(const MeshSpec& m, Bytes s) {
  Schedule sch;
  const double xc = static_cast<double>(m.x) * m.tile;
  Phase rows, columns;
  rows.repeat = m.x - 1.0;
  for (int r = 0; r < m.y; ++r) ring_step(m, m.x, r, false, m.tile * s.value() / m.x, rows);
  columns.repeat = 2.0 * (m.y - 1);
  for (int c = 0; c < m.x; ++c) ring_step(m, m.y, c, true, m.tile * (s.value() / xc) / m.y, columns);
  if (m.x > 1) sch.phases.push_back(rows);  // reduce-scatter
  if (m.y > 1) sch.phases.push_back(columns);
  if (m.x > 1) sch.phases.push_back(rows);  // all-gather
  return sch;
}

}  // namespace wallsim::wafer
