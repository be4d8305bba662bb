// Rail-optimized GPU cluster (as DGX SuperPODs and the Llama 3 cluster are built): GPUs of a
// scale-up domain share one logical NVSwitch; GPU r of every node in a leaf group plugs into
// that group's rail-r leaf; every leaf has one cable to every spine. Traffic inside a domain
// never touches the scale-out fabric. Storage hangs off the spines.
#include "core/error.hpp"
#include "topology/families.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {
namespace {

struct ClosTables {
  long long gpus = 0;
  int spines = 0;
  std::vector<std::uint32_t> domain_of, leaf_of;  // per GPU: its scale-up domain and leaf
  std::vector<LinkId> gpu_nvs, nvs_gpu;    // per GPU
  std::vector<LinkId> gpu_leaf, leaf_gpu;  // per GPU (empty without scale-out)
  std::vector<LinkId> leaf_spine, spine_leaf;  // [leaf * spines + s]
  std::vector<NodeId> storage;                 // storage node ids
  std::vector<LinkId> spine_storage, storage_spine;  // [storage_index * spines + s]
};

/// Appends `links` to `out` (cleared by Router::route), reusing its storage.
void set_path(Path& out, std::initializer_list<LinkId> links) {
  for (LinkId l : links) out.push_back(l);
}

class ClosRouter final : public Router {
 public:
  explicit ClosRouter(ClosTables t) : t_(std::move(t)) {}

 private:
  [[nodiscard]] long long leaf_of(NodeId gpu) const { return t_.leaf_of[gpu]; }
  [[nodiscard]] long long storage_index(NodeId n) const {
    for (std::size_t i = 0; i < t_.storage.size(); ++i) {
      if (t_.storage[i] == n) return static_cast<long long>(i);
    }
    return -1;
  }
  bool do_route(const Topology&, NodeId src, NodeId dst, std::uint64_t key,
                const std::vector<double>*, Path& out) const override {
    const bool s_gpu = src < t_.gpus, d_gpu = dst < t_.gpus;
    if (s_gpu && d_gpu && t_.domain_of[src] == t_.domain_of[dst]) {
      set_path(out, {t_.gpu_nvs[src], t_.nvs_gpu[dst]});
      return true;
    }
    if (t_.gpu_leaf.empty() || t_.spines == 0) return false;
    const auto s = static_cast<long long>(ecmp_hash(key, src, dst, 1) % t_.spines);
    if (s_gpu && d_gpu) {
      const long long ls = leaf_of(src), lt = leaf_of(dst);
      if (ls == lt) {
        set_path(out, {t_.gpu_leaf[src], t_.leaf_gpu[dst]});
      } else {
        set_path(out, {t_.gpu_leaf[src], t_.leaf_spine[ls * t_.spines + s],
               t_.spine_leaf[lt * t_.spines + s], t_.leaf_gpu[dst]});
      }
      return true;
    }
    if (s_gpu) {
      const long long si = storage_index(dst);
      if (si < 0) return false;
      set_path(out, {t_.gpu_leaf[src], t_.leaf_spine[leaf_of(src) * t_.spines + s],
             t_.spine_storage[si * t_.spines + s]});
      return true;
    }
    if (d_gpu) {
      const long long si = storage_index(src);
      if (si < 0) return false;
      set_path(out, {t_.storage_spine[si * t_.spines + s], t_.spine_leaf[leaf_of(dst) * t_.spines + s],
             t_.leaf_gpu[dst]});
      return true;
    }
    return false;
  }
  [[nodiscard]] std::string_view do_name() const override { return "rail-ecmp"; }
  ClosTables t_;
};

}  // namespace

Topology build_clos(const ClosParams& p) {
  if (p.nodes < 1) throw Error("clos.nodes", "must be at least 1");
  if (p.gpus_per_node < 1) throw Error("clos.gpus_per_node", "must be at least 1");
  check_size("clos.nodes", static_cast<long double>(p.nodes) * p.gpus_per_node);
  const int domain = p.domain == 0 ? p.gpus_per_node : p.domain;
  const long long gpus = p.nodes * p.gpus_per_node;
  if (domain % p.gpus_per_node != 0 || gpus % domain != 0) {
    throw Error("clos.domain", std::to_string(domain) + " must be a multiple of gpus_per_node " +
                                   std::to_string(p.gpus_per_node) + " and divide " +
                                   std::to_string(gpus) + " GPUs");
  }
  const bool scale_out = gpus > domain;
  const long long npl = p.nodes_per_leaf == 0 ? std::min<long long>(p.nodes, 32) : p.nodes_per_leaf;
  if (scale_out && p.nodes % npl != 0) {
    throw Error("clos.nodes_per_leaf", std::to_string(npl) + " does not divide nodes " +
                                           std::to_string(p.nodes));
  }
  const int spines = p.spines == 0 ? static_cast<int>(npl) : p.spines;
  const long long groups = scale_out ? p.nodes / npl : 0;
  const long long leaves = groups * p.gpus_per_node;

  TopologyBuilder b;
  const auto t_gpu = b.tier("gpu");
  const auto t_nvs = b.tier("nvswitch");
  const auto t_leaf = b.tier("leaf");
  const auto t_spine = b.tier("spine");
  const auto t_storage = b.tier("storage");
  for (long long i = 0; i < gpus; ++i) b.add_node(NodeKind::kEndpoint, t_gpu, i, false);
  const NodeId first_nvs = static_cast<NodeId>(b.num_nodes());
  for (long long d = 0; d < gpus / domain; ++d) {
    b.add_node(NodeKind::kSwitch, t_nvs, d, true);
  }
  const NodeId first_leaf = static_cast<NodeId>(b.num_nodes());
  for (long long l = 0; l < leaves; ++l) b.add_node(NodeKind::kSwitch, t_leaf, l, true, p.switch_latency);
  const NodeId first_spine = static_cast<NodeId>(b.num_nodes());
  if (scale_out) {
    for (int s = 0; s < spines; ++s) b.add_node(NodeKind::kSwitch, t_spine, s, true, p.switch_latency);
  }
  ClosTables t;
  t.gpus = gpus;
  t.spines = scale_out ? spines : 0;
  const bool storage = p.storage.value() > 0.0;
  const int storage_nodes = storage ? p.storage_nodes : 0;
  for (int i = 0; i < storage_nodes; ++i) {
    t.storage.push_back(b.add_node(NodeKind::kStorage, t_storage, i, false));
  }

  const Link up = make_link(p.scale_up, LinkClass::kScaleUp);
  const Link out = make_link(p.scale_out, LinkClass::kScaleOut);
  t.gpu_nvs.resize(gpus);
  t.nvs_gpu.resize(gpus);
  t.domain_of.resize(gpus);
  t.leaf_of.resize(gpus);
  for (long long g = 0; g < gpus; ++g) {
    t.domain_of[g] = static_cast<std::uint32_t>(g / domain);
    t.leaf_of[g] = static_cast<std::uint32_t>((g / p.gpus_per_node / npl) * p.gpus_per_node + g % p.gpus_per_node);
  }
  if (domain > 1) {
    for (long long g = 0; g < gpus; ++g) {
      const auto id = b.add_cable(static_cast<NodeId>(g), first_nvs + static_cast<NodeId>(g / domain), up);
      t.gpu_nvs[g] = id;
      t.nvs_gpu[g] = id + 1;
    }
  }
  if (scale_out) {
    t.gpu_leaf.resize(gpus);
    t.leaf_gpu.resize(gpus);
    for (long long g = 0; g < gpus; ++g) {
      const auto id = b.add_cable(static_cast<NodeId>(g), first_leaf + t.leaf_of[g], out);
      t.gpu_leaf[g] = id;
      t.leaf_gpu[g] = id + 1;
    }
    t.leaf_spine.resize(leaves * spines);
    t.spine_leaf.resize(leaves * spines);
    for (long long l = 0; l < leaves; ++l) {
      for (int s = 0; s < spines; ++s) {
        const auto id = b.add_cable(first_leaf + static_cast<NodeId>(l), first_spine + s, out);
        t.leaf_spine[l * spines + s] = id;
        t.spine_leaf[l * spines + s] = id + 1;
      }
    }
    if (storage) {
      LinkParams sp = p.scale_out;
      sp.bandwidth = p.storage / static_cast<double>(storage_nodes * spines);
      const Link sl = make_link(sp, LinkClass::kStorage);
      t.spine_storage.resize(static_cast<std::size_t>(storage_nodes) * spines);
      t.storage_spine.resize(t.spine_storage.size());
      for (int i = 0; i < storage_nodes; ++i) {
        for (int s = 0; s < spines; ++s) {
          const auto id = b.add_cable(first_spine + s, t.storage[i], sl);
          t.spine_storage[i * spines + s] = id;
          t.storage_spine[i * spines + s] = id + 1;
        }
      }
    }
  } else if (storage) {
    LinkParams sp = p.scale_up;
    sp.bandwidth = p.storage / static_cast<double>(storage_nodes * (gpus / domain));
    const Link sl = make_link(sp, LinkClass::kStorage);
    for (int i = 0; i < storage_nodes; ++i) {
      for (long long d = 0; d < gpus / domain; ++d) {
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
  std::vector<std::vector<std::uint32_t>> levels{t.domain_of};
  if (scale_out) levels.push_back(t.leaf_of);
  topo.set_router(std::make_shared<ClosRouter>(std::move(t)));
  topo.set_cost_levels(std::move(levels));
  return topo;
}

}  // namespace wallsim::topology
