// Rail-optimized GPU cluster (as DGX SuperPODs and the Llama 3 cluster are built): GPUs of a
// scale-up domain share one logical NVSwitch; GPU r of every node in a leaf group plugs into
// that group's rail-r leaf; every leaf has one cable to every spine. Traffic inside a domain
// never touches the scale-out fabric. Storage hangs off the spines.
#include <stdexcept>

#include "core/error.hpp"
#include "topology/families.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {
namespace {

/// The fabric's numbering: cables are added kind by kind in a fixed order, so every link id is
/// arithmetic (no per-GPU tables: a rank holding part of the fabric routes any pair).
struct ClosLayout {
  long long gpus = 0, gpus_per_node = 1, nodes_per_leaf = 1, domain = 1;
  long long spines = 0;  // 0: no scale-out
  bool nvswitch = false;
  std::uint32_t leaf_base = 0, spine_base = 0, storage_base = 0;  // first cable of each kind
  std::vector<NodeId> storage;                                   // storage node ids

  [[nodiscard]] long long domain_of(long long g) const { return g / domain; }
  [[nodiscard]] long long leaf_of(long long g) const {
    return (g / gpus_per_node / nodes_per_leaf) * gpus_per_node + g % gpus_per_node;
  }
  // Cable ids; the link from the first end is 2c, the way back 2c + 1.
  [[nodiscard]] static LinkId up(long long cable) { return static_cast<LinkId>(2 * cable); }
  [[nodiscard]] static LinkId down(long long cable) { return static_cast<LinkId>(2 * cable + 1); }
  [[nodiscard]] long long nvs_cable(long long g) const { return g; }
  [[nodiscard]] long long leaf_cable(long long g) const { return leaf_base + g; }
  [[nodiscard]] long long spine_cable(long long leaf, long long s) const { return spine_base + leaf * spines + s; }
  [[nodiscard]] long long storage_cable(long long i, long long s) const { return storage_base + i * spines + s; }
};

/// Appends `links` to `out` (cleared by Router::route), reusing its storage.
void set_path(Path& out, std::initializer_list<LinkId> links) {
  for (LinkId l : links) out.push_back(l);
}

class ClosRouter final : public Router {
 public:
  explicit ClosRouter(ClosLayout t) : t_(std::move(t)) {}

 private:
  [[nodiscard]] long long storage_index(NodeId n) const {
    for (std::size_t i = 0; i < t_.storage.size(); ++i) {
      if (t_.storage[i] == n) return static_cast<long long>(i);
    }
    return -1;
  }
  bool do_route(const Topology&, NodeId src, NodeId dst, std::uint64_t key,
                const std::vector<double>*, Path& out) const override {
    const bool s_gpu = src < t_.gpus, d_gpu = dst < t_.gpus;
    using L = ClosLayout;
    if (s_gpu && d_gpu && t_.domain_of(src) == t_.domain_of(dst)) {
      set_path(out, {L::up(t_.nvs_cable(src)), L::down(t_.nvs_cable(dst))});
      return true;
    }
    if (t_.spines == 0) return false;
    const auto s = static_cast<long long>(ecmp_hash(key, src, dst, 1) % t_.spines);
    if (s_gpu && d_gpu) {
      const long long ls = t_.leaf_of(src), lt = t_.leaf_of(dst);
      if (ls == lt) {
        set_path(out, {L::up(t_.leaf_cable(src)), L::down(t_.leaf_cable(dst))});
      } else {
        set_path(out, {L::up(t_.leaf_cable(src)), L::up(t_.spine_cable(ls, s)), L::down(t_.spine_cable(lt, s)),
                       L::down(t_.leaf_cable(dst))});
      }
      return true;
    }
    if (s_gpu) {
      const long long si = storage_index(dst);
      if (si < 0) return false;
      set_path(out, {L::up(t_.leaf_cable(src)), L::up(t_.spine_cable(t_.leaf_of(src), s)),
                     L::up(t_.storage_cable(si, s))});
      return true;
    }
    if (d_gpu) {
      const long long si = storage_index(src);
      if (si < 0) return false;
      set_path(out, {L::down(t_.storage_cable(si, s)), L::down(t_.spine_cable(t_.leaf_of(dst), s)),
                     L::down(t_.leaf_cable(dst))});
      return true;
    }
    return false;
  }
  [[nodiscard]] std::string_view do_name() const override { return "rail-ecmp"; }
  ClosLayout t_;
};

}  // namespace

Topology build_clos(const ClosParams& p, Part part) {
  if (p.nodes < 1) throw Error("clos.nodes", "must be at least 1");
  if (p.gpus_per_node < 1) throw Error("clos.gpus_per_node", "must be at least 1");
  check_size("clos.nodes", static_cast<long double>(p.nodes) * p.gpus_per_node);
  if (p.domain < 0 || p.nodes_per_leaf < 0 || p.spines < 0 || p.storage_nodes < 0) {
    throw std::logic_error("build_clos: negative count");  // the parsers read counts as positive
  }
  const int domain = p.domain == 0 ? p.gpus_per_node : p.domain;
  const long long gpus = p.nodes * p.gpus_per_node;
  if (domain % p.gpus_per_node != 0) {
    throw Error("clos.domain", std::to_string(domain) + " must be a multiple of gpus_per_node " +
                                   std::to_string(p.gpus_per_node));
  }
  // Domains in GPU order; the last may be partial (a job on part of a rack).
  const long long domains = (gpus + domain - 1) / domain;
  const bool scale_out = gpus > domain;
  const long long npl = p.nodes_per_leaf == 0 ? std::min<long long>(p.nodes, 32) : p.nodes_per_leaf;
  const int spines = p.spines == 0 ? static_cast<int>(npl) : p.spines;
  // Leaf groups in node order; the last may be partial (a job on part of the racks a leaf
  // group serves: its leaves have fewer GPUs below, the same uplinks).
  const long long groups = scale_out ? (p.nodes + npl - 1) / npl : 0;
  const long long leaves = groups * p.gpus_per_node;
  {
    // Every node and cable, counted before any is made: a million spines is bad input, not
    // a few gigabytes of graph.
    const long double g = static_cast<long double>(gpus), out = scale_out ? 1 : 0;
    const long double st = p.storage.value() > 0.0 ? p.storage_nodes : 0;
    const long double sp = out * spines;
    const long double nodes = g + static_cast<long double>(domains) + leaves + sp + st;
    const long double cables = (domain > 1 ? g : 0) + out * g + static_cast<long double>(leaves) * sp +
                               st * (scale_out ? sp : static_cast<long double>(domains));
    check_size(p.spines > static_cast<int>(npl) ? "clos.spines" : "clos.nodes", nodes, cables);
  }

  TopologyBuilder b(part);
  const auto t_gpu = b.tier("gpu");
  const auto t_nvs = b.tier("nvswitch");
  const auto t_leaf = b.tier("leaf");
  const auto t_spine = b.tier("spine");
  const auto t_storage = b.tier("storage");
  ClosLayout t;
  t.gpus = gpus;
  t.gpus_per_node = p.gpus_per_node;
  t.nodes_per_leaf = npl;
  t.domain = domain;
  t.spines = scale_out ? spines : 0;
  t.nvswitch = domain > 1;
  t.leaf_base = static_cast<std::uint32_t>(t.nvswitch ? gpus : 0);
  t.spine_base = static_cast<std::uint32_t>(t.leaf_base + gpus);
  t.storage_base = static_cast<std::uint32_t>(t.spine_base + leaves * spines);
  for (long long i = 0; i < gpus; ++i) b.add_node(NodeKind::kEndpoint, t_gpu, i, false);
  // A rank holding part of the fabric keeps each NVSwitch and leaf with its first GPU.
  const NodeId first_nvs = static_cast<NodeId>(b.num_nodes());
  for (long long d = 0; d < domains; ++d) {
    b.anchor(b.add_node(NodeKind::kSwitch, t_nvs, d, true), static_cast<NodeId>(d * domain));
  }
  const NodeId first_leaf = static_cast<NodeId>(b.num_nodes());
  for (long long l = 0; l < leaves; ++l) {
    const long long first_gpu = (l / p.gpus_per_node) * npl * p.gpus_per_node + l % p.gpus_per_node;
    b.anchor(b.add_node(NodeKind::kSwitch, t_leaf, l, true, p.switch_latency), static_cast<NodeId>(first_gpu));
  }
  const NodeId first_spine = static_cast<NodeId>(b.num_nodes());
  if (scale_out) {
    for (int s = 0; s < spines; ++s) b.add_node(NodeKind::kSwitch, t_spine, s, true, p.switch_latency);
  }
  const bool storage = p.storage.value() > 0.0;
  const int storage_nodes = storage ? p.storage_nodes : 0;
  for (int i = 0; i < storage_nodes; ++i) {
    t.storage.push_back(b.add_node(NodeKind::kStorage, t_storage, i, false));
  }

  // Cables in the order ClosLayout numbers them (checked as they are added).
  auto cable = [&b](NodeId u, NodeId v, const Link& props, long long expected) {
    if (b.add_cable(u, v, props) != ClosLayout::up(expected)) throw std::logic_error("clos: cable order");
  };
  const Link up = make_link(p.scale_up, LinkClass::kScaleUp);
  const Link out = make_link(p.scale_out, LinkClass::kScaleOut);
  if (t.nvswitch) {
    for (long long g = 0; g < gpus; ++g) {
      cable(static_cast<NodeId>(g), first_nvs + static_cast<NodeId>(t.domain_of(g)), up, t.nvs_cable(g));
    }
  }
  if (scale_out) {
    for (long long g = 0; g < gpus; ++g) {
      cable(static_cast<NodeId>(g), first_leaf + static_cast<NodeId>(t.leaf_of(g)), out, t.leaf_cable(g));
    }
    for (long long l = 0; l < leaves; ++l) {
      for (int s = 0; s < spines; ++s) {
        cable(first_leaf + static_cast<NodeId>(l), first_spine + s, out, t.spine_cable(l, s));
      }
    }
    if (storage) {
      LinkParams sp = p.scale_out;
      sp.bandwidth = p.storage / static_cast<double>(storage_nodes * spines);
      const Link sl = make_link(sp, LinkClass::kStorage);
      for (int i = 0; i < storage_nodes; ++i) {
        for (int s = 0; s < spines; ++s) cable(first_spine + s, t.storage[i], sl, t.storage_cable(i, s));
      }
    }
  } else if (storage) {
    LinkParams sp = p.scale_up;
    sp.bandwidth = p.storage / static_cast<double>(storage_nodes * domains);
    const Link sl = make_link(sp, LinkClass::kStorage);
    for (int i = 0; i < storage_nodes; ++i) {
      for (long long d = 0; d < domains; ++d) {
        b.add_cable(first_nvs + static_cast<NodeId>(d), t.storage[i], sl);
      }
    }
  }

  FamilyInfo info;
  info.kind = "clos";
  info.domain_size = static_cast<std::size_t>(domain);
  info.switch_reduction = domain > 1 ? p.switch_reduction : 0.0;
  if (domain == p.gpus_per_node) info.orbits = {{0, static_cast<double>(gpus)}};
  Topology topo = b.finish(std::move(info), nullptr);
  // GPU pairs in one scale-up domain cross GPU, NVSwitch, GPU; on one leaf GPU, leaf, GPU;
  // otherwise GPU, leaf, spine, leaf, GPU. Every link of a kind has the same parameters and
  // every spine the same latency, so each level has one cost whichever spine ECMP picks.
  std::vector<std::vector<std::uint32_t>> levels(scale_out ? 2 : 1, std::vector<std::uint32_t>(gpus));
  for (long long g = 0; g < gpus; ++g) {
    levels[0][g] = static_cast<std::uint32_t>(t.domain_of(g));
    if (scale_out) levels[1][g] = static_cast<std::uint32_t>(t.leaf_of(g));
  }
  topo.set_router(std::make_shared<ClosRouter>(std::move(t)));
  topo.set_cost_levels(std::move(levels));
  // A rail leaf's nodes_per_leaf GPUs share its `spines` uplinks, all that leaves the leaf:
  // a taper (npl:spines oversubscription) when there are fewer uplinks than down-links; none
  // otherwise, when the GPUs' own links bind first.
  if (scale_out && spines < npl) topo.set_level_egress({Bandwidth{}, out.bandwidth * static_cast<double>(spines)});
  return topo;
}

}  // namespace wallsim::topology
