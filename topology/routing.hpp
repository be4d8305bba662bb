// Routing. Each family brings a Router that knows its structure (up/down ECMP on fat-trees
// and Clos, dimension order on torus and mesh, minimal/Valiant/UGAL on dragonfly); the
// Topology falls back to shortest-path ECMP over the surviving graph when a family route
// crosses a failed element or a family has no structural router. ECMP picks among equal-cost
// next hops with a deterministic hash of (flow key, source, destination, hop), as a switch
// hashes a flow's 5-tuple: the same flow always takes the same path, different flows spread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "topology/graph.hpp"

namespace wallsim::topology {

/// The ECMP hash: a mix of the flow key, the pair and the hop (splitmix64 finaliser).
std::uint64_t ecmp_hash(std::uint64_t key, NodeId src, NodeId dst, std::uint64_t hop);

/// A family's structural router (NVI: public route(), private do_route()).
class Router {
 public:
  virtual ~Router() = default;
  /// Writes a path into `out` and returns true, or returns false when the family has no
  /// structural route for this pair (the Topology then uses shortest-path ECMP).
  bool route(const Topology& t, NodeId src, NodeId dst, std::uint64_t key,
             const std::vector<double>* load, Path& out) const {
    out.clear();
    return do_route(t, src, dst, key, load, out);
  }
  [[nodiscard]] std::string_view name() const { return do_name(); }

 private:
  virtual bool do_route(const Topology& t, NodeId src, NodeId dst, std::uint64_t key,
                        const std::vector<double>* load, Path& out) const = 0;
  [[nodiscard]] virtual std::string_view do_name() const = 0;
};

/// Hop distances from every node to `dst` over surviving links, where only transit nodes
/// forward (the source may be any node). Unreachable nodes hold kUnreachable.
constexpr std::uint32_t kUnreachable = 0xFFFFFFFFu;
std::vector<std::uint32_t> distances_to(const Topology& t, NodeId dst);

/// Shortest-path ECMP over surviving links: at each hop a hashed pick among the next hops
/// one step closer. Returns false when dst is unreachable.
bool ecmp_shortest_path(const Topology& t, const std::vector<std::uint32_t>& dist_to_dst,
                        NodeId src, NodeId dst, std::uint64_t key, Path& out);

}  // namespace wallsim::topology
