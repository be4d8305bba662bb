// Builders of small fabrics with round numbers, shared by the topology tests.
#pragma once

#include "topology/families.hpp"

namespace wallsim::topology::test {

inline LinkParams link(double gbyte_per_s = 50.0, double us = 1.0) {
  return {units::gbyte_per_s(gbyte_per_s), units::us(us), {}};
}

inline Topology fat_tree(int k, double oversub = 1.0) {
  return build_fat_tree({.k = k, .oversubscription = oversub, .link = link()});
}

inline Topology dragonfly(int p, int a, int h, int g, const char* routing = "minimal") {
  return build_dragonfly({.p = p, .a = a, .h = h, .g = g, .routing = routing,
                          .terminal = link(), .local = link(), .global = link(25)});
}

inline Topology torus(std::vector<int> dims, bool wrap) {
  return build_torus({.dims = std::move(dims), .wrap = wrap, .link = link()});
}

inline Topology clos(int nodes, int gpn, int npl, int spines, int domain = 0) {
  return build_clos({.nodes = nodes, .gpus_per_node = gpn, .domain = domain, .nodes_per_leaf = npl,
                     .spines = spines, .scale_up = link(450), .scale_out = link(50)});
}

}  // namespace wallsim::topology::test
