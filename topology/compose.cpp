// A scale-up layer (an NVSwitch per domain of GPUs) added to any scale-out fabric, so that GPU
// clusters can sit on fat-trees, dragonflies and tori as well as on the rail-optimized Clos.
#include <memory>

#include "core/error.hpp"
#include "topology/families.hpp"
#include "topology/routing.hpp"

namespace wallsim::topology {
namespace {

class ScaleUpRouter final : public Router {
 public:
  ScaleUpRouter(std::shared_ptr<const Topology> fabric, std::vector<LinkId> to_new, std::vector<LinkId> up,
                std::vector<LinkId> down, std::size_t domain)
      : fabric_(std::move(fabric)), to_new_(std::move(to_new)), up_(std::move(up)), down_(std::move(down)),
        domain_(domain) {}

 private:
  bool do_route(const Topology&, NodeId src, NodeId dst, std::uint64_t key, const std::vector<double>*,
                Path& out) const override {
    const std::size_t n = up_.size();
    if (src >= n || dst >= n) return false;  // storage and switches: shortest paths
    if (src / domain_ == dst / domain_) {
      out.push_back(up_[src]);
      out.push_back(down_[dst]);
      return true;
    }
    fabric_->route_into(src, dst, key, scratch_);
    for (auto l : scratch_) out.push_back(to_new_[l]);
    return true;
  }
  [[nodiscard]] std::string_view do_name() const override { return "scale-up + fabric"; }
  std::shared_ptr<const Topology> fabric_;
  std::vector<LinkId> to_new_, up_, down_;
  std::size_t domain_;
  static thread_local Path scratch_;
};

thread_local Path ScaleUpRouter::scratch_;

}  // namespace

Topology with_scale_up(Topology fabric_in, int domain, const LinkParams& scale_up, double switch_reduction) {
  auto fabric = std::make_shared<const Topology>(std::move(fabric_in));
  const std::size_t gpus = fabric->num_endpoints();
  if (domain < 1) throw Error("cluster.scale_up.domain", "must be at least 1");
  // Domains in GPU order; the last may be partial (a job on part of a rack).
  const std::size_t domains = (gpus + static_cast<std::size_t>(domain) - 1) / static_cast<std::size_t>(domain);
  TopologyBuilder b;
  std::vector<std::uint8_t> tier;
  for (const auto& label : fabric->tier_labels()) tier.push_back(b.tier(label == "ep" ? "gpu" : label));
  for (NodeId v = 0; v < fabric->num_nodes(); ++v) {
    const Node& node = fabric->node(v);
    b.add_node(node.kind, tier.at(node.tier), node.index, node.transit);
  }
  const auto t_nv = b.tier("nvswitch");
  const NodeId first_switch = static_cast<NodeId>(b.num_nodes());
  for (std::size_t d = 0; d < domains; ++d) {
    b.add_node(NodeKind::kSwitch, t_nv, static_cast<std::uint32_t>(d), true);
  }
  // The fabric's cables (each once), then the scale-up cables.
  std::vector<LinkId> to_new(fabric->num_links());
  for (LinkId l = 0; l < fabric->num_links(); ++l) {
    const LinkId r = fabric->reverse(l);
    if (r < l) continue;
    const auto id = b.add_cable(fabric->link_source(l), fabric->link_target(l), fabric->link(l));
    to_new[l] = id;
    to_new[r] = id + 1;
  }
  const Link up_link = make_link(scale_up, LinkClass::kScaleUp);
  std::vector<LinkId> up(gpus), down(gpus);
  for (std::size_t g = 0; g < gpus; ++g) {
    const auto id = b.add_cable(static_cast<NodeId>(g), first_switch + static_cast<NodeId>(g / domain), up_link);
    up[g] = id;
    down[g] = id + 1;
  }
  FamilyInfo info;
  info.kind = fabric->info().kind;
  info.spec = fabric->info().spec;
  info.domain_size = static_cast<std::size_t>(domain);
  info.switch_reduction = switch_reduction;
  Topology t = b.finish(std::move(info), nullptr);
  // Cost levels: the domain first, then the fabric's (when it has them, every route between
  // two domains costs what the fabric's route costs at their first shared fabric level).
  std::vector<std::vector<std::uint32_t>> levels;
  if (fabric->num_cost_levels() > 0) {
    levels.emplace_back(gpus);
    for (std::size_t g = 0; g < gpus; ++g) levels[0][g] = static_cast<std::uint32_t>(g / domain);
    // num_cost_levels() counts the last, "nothing shared" level too: it has no groups.
    for (std::size_t i = 0; i + 1 < fabric->num_cost_levels(); ++i) {
      levels.emplace_back(gpus);
      for (std::size_t g = 0; g < gpus; ++g) levels.back()[g] = fabric->cost_group(static_cast<NodeId>(g), i);
    }
  }
  t.set_router(std::make_shared<ScaleUpRouter>(fabric, std::move(to_new), std::move(up), std::move(down),
                                               static_cast<std::size_t>(domain)));
  if (!levels.empty()) {
    t.set_cost_levels(std::move(levels));
    // The fabric's group egresses, one level up (the domain, level 0, has none).
    std::vector<Bandwidth> egress{Bandwidth{}};
    for (std::size_t i = 0; i + 1 < fabric->num_cost_levels(); ++i) egress.push_back(fabric->level_egress(i));
    t.set_level_egress(std::move(egress));
  }
  return t;
}

}  // namespace wallsim::topology
