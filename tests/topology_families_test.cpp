// Counts and diameters against closed forms.
#include <catch2/catch.hpp>

#include <boost/range/iterator_range.hpp>

#include "core/error.hpp"
#include "topology/metrics.hpp"
#include "topology/spec.hpp"
#include "core/presets.hpp"
#include "core/scenario.hpp"
#include "topology_test_support.hpp"

using namespace wallsim;
using namespace wallsim::topology;
using Catch::Matchers::StartsWith;
using Catch::Matchers::Contains;

TEST_CASE("topology::fat_tree k-ary counts and diameter", "[topology]") {
  for (int k : {2, 4, 6, 8, 16}) {
    INFO("k=" << k);
    const Topology t = test::fat_tree(k);
    // Al-Fares: k^3/4 hosts, 5k^2/4 switches; 3 cable layers of k^3/4 cables, two directions.
    CHECK(t.num_endpoints() == static_cast<size_t>(k * k * k / 4));
    CHECK(t.num_switches() == static_cast<size_t>(5 * k * k / 4));
    CHECK(t.num_links() == static_cast<size_t>(2 * 3 * k * k * k / 4));
    const Metrics m = compute_metrics(t);
    // Host-edge-agg-core-agg-edge-host.
    CHECK(m.diameter_hops == 6);
  }
  SECTION("two-level leaf-spine from endpoints and radix") {
    const Topology t = build_from_config(Config(spec_to_yaml("fat-tree:endpoints=32,radix=8,bandwidth=400 Gb/s"), "fat-tree"));
    // 32 endpoints, 4 down-ports per leaf: 8 leaves and 4 spines.
    CHECK(t.num_endpoints() == 32);
    CHECK(t.num_switches() == 12);
    CHECK(compute_metrics(t).diameter_hops == 4);
  }
}

TEST_CASE("topology::fat_tree k=4 average hops", "[topology]") {
  // From one host: 1 host at 2 hops (same edge), 2 at 4 (same pod), 12 at 6: 82 / 15.
  const Metrics m = compute_metrics(test::fat_tree(4));
  CHECK(m.avg_hops == Approx(82.0 / 15.0));
  // Equal-cost paths: 1, 2 and 4 respectively: (1 + 4 + 48) / 15.
  CHECK(m.path_diversity == Approx(53.0 / 15.0));
}

TEST_CASE("topology::dragonfly counts and diameter", "[topology]") {
  for (auto [p, a, h] : {std::tuple{2, 4, 2}, {1, 2, 1}, {3, 6, 3}}) {
    const int g = a * h + 1;  // balanced: one global cable between every pair of groups
    INFO("p=" << p << " a=" << a << " h=" << h);
    const Topology t = test::dragonfly(p, a, h, g);
    CHECK(t.num_endpoints() == static_cast<size_t>(p * a * g));
    CHECK(t.num_switches() == static_cast<size_t>(a * g));
    const size_t cables = p * a * g + g * a * (a - 1) / 2 + g * (g - 1) / 2;
    CHECK(t.num_links() == 2 * cables);
    // endpoint, router, local, global, local, router, endpoint: 5 links at most.
    CHECK(compute_metrics(t).diameter_hops == 5);
  }
  SECTION("fewer groups: several global cables per pair") {
    // a*h = 8 ports, g - 1 = 4 other groups: 2 cables to each.
    const Topology t = test::dragonfly(1, 4, 2, 5);
    const size_t cables = 20 + 5 * 6 + 2 * 5 * 4 / 2;
    CHECK(t.num_links() == 2 * cables);
  }
  CHECK_THROWS_WITH(test::dragonfly(1, 2, 1, 4), StartsWith("dragonfly.g: 4 groups exceed a*h+1 = 3"));
}

TEST_CASE("topology::torus diameter is the sum of floor(d/2) with wrap, d-1 without", "[topology]") {
  for (const auto& dims : std::vector<std::vector<int>>{{8}, {4, 4}, {4, 4, 4}, {3, 5, 2}, {6, 2, 3}}) {
    int wrap_d = 0, mesh_d = 0, n = 1;
    for (int d : dims) {
      wrap_d += d / 2;
      mesh_d += d - 1;
      n *= d;
    }
    const Topology w = test::torus(dims, true);
    CHECK(w.num_endpoints() == static_cast<size_t>(n));
    CHECK(compute_metrics(w).diameter_hops == wrap_d);
    CHECK(compute_metrics(test::torus(dims, false)).diameter_hops == mesh_d);
  }
}

TEST_CASE("topology::clos rail-optimized counts", "[topology]") {
  // 8 nodes x 8 GPUs, 4 nodes per leaf: 2 groups x 8 rails = 16 leaves, 4 spines, 8 NVSwitches.
  const Topology t = test::clos(8, 8, 4, 4);
  CHECK(t.num_endpoints() == 64);
  CHECK(t.num_switches() == 8 + 16 + 4);
  // Cables: 64 GPU-NVSwitch, 64 GPU-leaf, 16 x 4 leaf-spine.
  CHECK(t.num_links() == 2 * (64 + 64 + 64));
  CHECK(compute_metrics(t).diameter_hops == 4);
  SECTION("NVL72: one scale-up domain across 18 trays") {
    const Topology n = test::clos(18, 4, 18, 1, 72);
    CHECK(n.num_endpoints() == 72);
    CHECK(n.num_switches() == 1);
    CHECK(compute_metrics(n).diameter_hops == 2);
  }
}

TEST_CASE("topology::clos parts: each rank's links are the whole fabric's, every cable in one part, same routes", "[topology]") {
  // 12 nodes x 4 GPUs, 3 nodes per leaf (4 groups x 4 rails), 3 spines, 2-node NVSwitch
  // domains, 2 storage nodes: every kind of cable, and parts that split leaf groups unevenly.
  ClosParams p{.nodes = 12, .gpus_per_node = 4, .domain = 8, .nodes_per_leaf = 3, .spines = 3,
               .scale_up = test::link(450), .scale_out = test::link(50)};
  p.switch_latency = Seconds::of(300e-9);
  p.storage = Bandwidth::of(1e11);
  p.storage_nodes = 2;
  const Topology whole = build_clos(p);
  REQUIRE(whole.whole());
  const std::size_t cables = whole.num_links() / 2;
  CHECK(cables == 48 + 48 + 16 * 3 + 2 * 3);
  for (int count : {2, 3, 5}) {
    std::vector<int> held_by(cables, 0);
    for (int index = 0; index < count; ++index) {
      INFO("part " << index << " of " << count);
      const Topology part = build_clos(p, {index, count});
      CHECK_FALSE(part.whole());
      CHECK(part.num_links() == whole.num_links());
      CHECK(part.num_nodes() == whole.num_nodes());
      std::size_t held = 0;
      for (LinkId l = 0; l < whole.num_links(); ++l) {
        // Properties of every link, held or not.
        CHECK(part.link(l).bandwidth == whole.link(l).bandwidth);
        CHECK(part.link(l).latency == whole.link(l).latency);
        CHECK(part.link(l).cls == whole.link(l).cls);
        if (!part.holds(l)) {
          CHECK_THROWS_AS(part.link_source(l), std::logic_error);
          continue;
        }
        ++held;
        CHECK(part.link_source(l) == whole.link_source(l));
        CHECK(part.link_target(l) == whole.link_target(l));
        if (l % 2 == 0) ++held_by[l / 2];
        // A rank's GPU cables are its own: GPU g is in part floor(g x count / 48).
        const NodeId a = whole.link_source(l), b = whole.link_target(l);
        const NodeId gpu = a < 48 ? a : b < 48 ? b : 48;
        if (gpu < 48) CHECK(static_cast<int>(gpu * count / 48) == index);
      }
      // The graph holds exactly the held links, each with its id.
      CHECK(num_edges(part.graph()) == held);
      for (auto e : boost::make_iterator_range(edges(part.graph()))) {
        const LinkId l = part.graph()[e].id;
        CHECK(source(e, part.graph()) == whole.link_source(l));
        CHECK(target(e, part.graph()) == whole.link_target(l));
      }
      // Routes and their costs are the whole fabric's, GPU to GPU and to and from storage.
      for (NodeId src = 0; src < whole.num_nodes(); src += 5) {
        for (NodeId dst = 0; dst < whole.num_nodes(); dst += 3) {
          const bool gpu_or_storage = (src < 48 || whole.node(src).kind == NodeKind::kStorage) &&
                                      (dst < 48 || whole.node(dst).kind == NodeKind::kStorage) &&
                                      (src < 48 || dst < 48);
          if (!gpu_or_storage) continue;
          for (std::uint64_t key : {0u, 7u}) {
            CHECK(part.route(src, dst, key) == whole.route(src, dst, key));
            CHECK(part.cost_level(src, dst) == whole.cost_level(src, dst));
          }
        }
      }
    }
    for (std::size_t c = 0; c < cables; ++c) {
      INFO("cable " << c);
      CHECK(held_by[c] == 1);
    }
  }
}

TEST_CASE("topology::ring, switch and fully-connected", "[topology]") {
  CHECK(compute_metrics(build_ring({.n = 7, .link = test::link()})).diameter_hops == 3);
  CHECK(build_ring({.n = 2, .link = test::link()}).num_links() == 2);
  const Topology s = build_switch({.n = 5, .link = test::link()});
  CHECK(s.num_switches() == 1);
  CHECK(compute_metrics(s).diameter_hops == 2);
  const Topology f = build_fully_connected({.n = 5, .link = test::link()});
  CHECK(f.num_links() == 20);
  CHECK(compute_metrics(f).diameter_hops == 1);
}

TEST_CASE("topology::wafer_mesh", "[topology]") {
  const Topology one = build_wafer_mesh({.x = 6, .y = 4, .link = test::link(4)});
  CHECK(one.num_endpoints() == 24);
  // Mesh: 2 * (5*4 + 6*3) directed links; diameter 5 + 3.
  CHECK(one.num_links() == 2 * (5 * 4 + 6 * 3));
  CHECK(compute_metrics(one).diameter_hops == 8);
  const Topology two = build_wafer_mesh({.x = 6, .y = 4, .wafers = 2, .link = test::link(4),
                                         .inter_wafer = test::link(150)});
  CHECK(two.num_endpoints() == 48);
  CHECK(two.num_switches() == 3);  // two I/O nodes and the switch
}

TEST_CASE("topology spec strings: bad input names the key", "[topology]") {
  auto build = [](const std::string& s) { return build_from_config(Config(spec_to_yaml(s), spec_to_yaml(s)["topology"].as<std::string>())); };
  CHECK_THROWS_WITH(build("fat-tree:k=5,bandwidth=1 GB/s"), StartsWith("fat-tree.k: must be an even number"));
  CHECK_THROWS_WITH(build("fat-tree:k=4,bandwith=1 GB/s"), StartsWith("fat-tree.bandwith: unknown key (did you mean 'bandwidth'?)"));
  CHECK_THROWS_WITH(build("fat-tree:k=4"), StartsWith("fat-tree.bandwidth: missing"));
  CHECK_THROWS_WITH(build("torus:dims=4x0,bandwidth=1 GB/s"), StartsWith("torus.dims"));
  CHECK_THROWS_WITH(build("clos:nodes=10,gpus_per_node=8,domain=12,bandwidth=1 GB/s,scale_up_bandwidth=9 GB/s"),
                    StartsWith("clos.domain: 12 must be a multiple of gpus_per_node 8"));
  CHECK_THROWS_WITH(build("fat-tre:k=4"), StartsWith("fat-tre.topology: unknown topology 'fat-tre' (did you mean 'fat-tree'?)"));
  CHECK_THROWS_WITH(build("ring:n"), StartsWith("ring: 'n' is not key=value"));
}

TEST_CASE("topology builders refuse fabrics past the node and cable limits before building anything", "[topology]") {
  auto build = [](const std::string& s) { return build_from_config(Config(spec_to_yaml(s), spec_to_yaml(s)["topology"].as<std::string>())); };
  // Each of these would take gigabytes; refused at once, the key named.
  // fat-tree k=400: 400^3/4 = 16,000,000 hosts plus 200,000 switches > 16,000,000 nodes.
  CHECK_THROWS_WITH(build("fat-tree:k=400,bandwidth=1 GB/s"),
                    StartsWith("fat-tree.k: gives 1.62e+07 nodes, more than wallsim builds (16,000,000)"));
  // fat-tree k=256: 4,194,304 hosts, a cable up from each host, edge and aggregation port:
  // 3 x 4,194,304 = 12,582,912 cables > 10,000,000.
  CHECK_THROWS_WITH(build("fat-tree:k=256,bandwidth=1 GB/s"),
                    StartsWith("fat-tree.k: gives 1.258e+07 cables, more than wallsim builds (10,000,000)"));
  // Clos: 1,000,000,000 spines are nodes far past the limit (the key is the spines').
  CHECK_THROWS_WITH(build("clos:nodes=128,gpus_per_node=8,nodes_per_leaf=16,spines=1000000000,bandwidth=1 GB/s,"
                          "scale_up_bandwidth=9 GB/s"),
                    StartsWith("clos.spines: gives 1e+09 nodes"));
  // Clos: 64 leaves x 200,000 spines = 12,800,000 cables.
  CHECK_THROWS_WITH(build("clos:nodes=128,gpus_per_node=8,nodes_per_leaf=16,spines=200000,bandwidth=1 GB/s,"
                          "scale_up_bandwidth=9 GB/s"),
                    StartsWith("clos.spines: gives 1.28e+07 cables"));
  // fully-connected n=5,000: 5,000 x 4,999 / 2 = 12,497,500 cables.
  CHECK_THROWS_WITH(build("fully-connected:n=5000,bandwidth=1 GB/s"), StartsWith("fully-connected.n: gives 1.25e+07 cables"));
  // dragonfly p=a=h=100, g = a*h+1 = 10,001: 1,000,100 routers, 101,010,100 nodes.
  CHECK_THROWS_WITH(build("dragonfly:p=100,a=100,h=100,bandwidth=1 GB/s"), StartsWith("dragonfly.p: gives 1.01e+08 nodes"));
  SECTION("fabrics of real size still build: a k=64 fat-tree, 65,536 hosts") {
    const Topology t = build("fat-tree:k=64,bandwidth=1 GB/s");
    CHECK(t.num_endpoints() == 65'536);
    CHECK(t.num_links() == 2 * 3 * 65'536);
  }
}

TEST_CASE("topology zero counts are errors, not the defaults", "[topology]") {
  auto build = [](const std::string& s) { return build_from_config(Config(spec_to_yaml(s), spec_to_yaml(s)["topology"].as<std::string>())); };
  const std::string clos = "clos:nodes=4,gpus_per_node=8,bandwidth=1 GB/s,scale_up_bandwidth=9 GB/s,";
  CHECK_NOTHROW(build(clos + "spines=2,nodes_per_leaf=2"));
  CHECK_THROWS_WITH(build(clos + "spines=0"), StartsWith("clos.spines: must be a positive whole number, not '0'"));
  CHECK_THROWS_WITH(build(clos + "nodes_per_leaf=0"), StartsWith("clos.nodes_per_leaf: must be a positive whole number"));
  CHECK_THROWS_WITH(build(clos + "domain=0"), StartsWith("clos.domain: must be a positive whole number"));
  CHECK_THROWS_WITH(build(clos + "storage_bandwidth=1 GB/s,storage_nodes=0"), StartsWith("clos.storage_nodes: must be a positive"));
  CHECK_THROWS_WITH(build("fat-tree:k=4,endpoints=0,bandwidth=1 GB/s"), StartsWith("fat-tree.endpoints: must be a positive"));
  CHECK_THROWS_WITH(build("wafer-mesh:dims=4x4,wafers=0,bandwidth=1 GB/s"), StartsWith("wafer-mesh.wafers: must be a positive"));
}

namespace {
const Presets& cluster_presets() {
  static const Presets p(std::string(WALLSIM_SOURCE_DIR) + "/data");
  return p;
}
}  // namespace

TEST_CASE("topology GPU clusters on fat-tree, dragonfly and torus: NVSwitch inside a node, the fabric outside", "[topology]") {
  // 4 nodes of 4 GPUs: 16 GPUs, the scale-out kinds with 16 endpoints.
  const std::string base =
      "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_up: {bandwidth: 400 GB/s, latency: 1 us}, "
      "scale_out: {bandwidth: 400 Gb/s, latency: 2 us, ";
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"fat-tree", "topology: fat-tree, k: 4}}"},
      {"dragonfly", "topology: dragonfly, p: 2, a: 4, h: 1, g: 2}}"},
      {"torus", "topology: torus, dims: 4x4}}"},
  };
  for (const auto& [kind, params] : kinds) {
    INFO(kind);
    const Scenario s = parse_scenario(base + params + "\nmodel: llama3-8b\n", "t.yaml", {}, cluster_presets());
    const Topology t = build_cluster(s.cluster);
    const Topology bare = build_from_config(Config(YAML::Load("{bandwidth: 50 GB/s, latency: 2 us, " + params.substr(0, params.size() - 1)), kind));
    CHECK(t.info().kind == kind);
    CHECK(t.info().domain_size == 4);
    CHECK(t.num_endpoints() == 16);
    CHECK(t.num_switches() == bare.num_switches() + 4);       // one NVSwitch per node
    CHECK(t.num_links() == bare.num_links() + 2 * 16);        // a scale-up cable per GPU
    for (NodeId a = 0; a < 16; ++a) {
      for (NodeId b = 0; b < 16; ++b) {
        if (a == b) continue;
        const Path p = t.route(a, b, 7);
        if (a / 4 == b / 4) {  // GPU, NVSwitch, GPU over scale-up links
          REQUIRE(p.size() == 2);
          CHECK(t.link(p[0]).cls == LinkClass::kScaleUp);
          CHECK(t.node_name(t.link_target(p[0])) == "nvswitch" + std::to_string(a / 4));
        } else {  // the bare fabric's route, hop for hop
          const Path q = bare.route(a, b, 7);
          REQUIRE(p.size() == q.size());
          for (std::size_t i = 0; i < p.size(); ++i) {  // the fabric's nodes keep their numbers
            CHECK(t.link_source(p[i]) == bare.link_source(q[i]));
            CHECK(t.link_target(p[i]) == bare.link_target(q[i]));
          }
        }
        // Cost levels (where the fabric has them) give the route's own cost.
        Path scratch;
        const auto by_level = t.route_cost(a, b, 7, scratch);
        const auto real = t.path_cost(p);
        CHECK(by_level.latency.value() == Approx(real.latency.value()));
        CHECK(by_level.bandwidth.value() == Approx(real.bandwidth.value()));
      }
    }
  }
  // A fabric whose endpoints are not the cluster's GPUs is bad input naming the section.
  CHECK_THROWS_WITH(build_cluster(parse_scenario(base + "topology: torus, dims: 4x2}}\nmodel: llama3-8b\n", "t.yaml", {},
                                                 cluster_presets())
                                      .cluster),
                    Catch::Contains("cluster.scale_out") && Catch::Contains("8 endpoints but the cluster has 16 GPUs"));
}

TEST_CASE("topology clos: a job on part of an NVL72 rack, and over racks of which the last is partial", "[topology]") {
  // 256 GPUs in trays of 4 on NVL72 racks (domain 72) with a rail leaf per rack (18 trays):
  // racks 0-2 are whole, rack 3 holds the job's last 40 GPUs (10 trays). Its NVSwitch joins
  // those 40, its 4 rail leaves have 10 GPUs each below and the same 18 spine uplinks.
  const Topology t = test::clos(64, 4, 18, 18, 72);
  std::size_t nvswitches = 0, leaves = 0;
  for (NodeId v = 0; v < t.num_nodes(); ++v) {
    nvswitches += t.node_name(v).rfind("nvswitch", 0) == 0;
    leaves += t.node_name(v).rfind("leaf", 0) == 0;
  }
  CHECK(nvswitches == 4);
  CHECK(leaves == 16);
  CHECK(t.route(220, 255).size() == 2);  // rack 3: GPU, NVSwitch, GPU
  CHECK(t.route(215, 216).size() == 4);  // racks 2 and 3, rail 3 and rail 0: leaf, spine, leaf
  CHECK(t.route(3, 219).size() == 4);  // rail 3 of racks 0 and 3: each rack has its own rail leaves
  // 72 GPUs of one rack: its GPUs all-reduce inside the domain, as a job on part of a rack.
  const Topology part = test::clos(9, 4, 9, 9, 72);
  CHECK(part.num_endpoints() == 36);
  CHECK(part.route(0, 35).size() == 2);
}

TEST_CASE("topology cost levels hold for every pair when scale-up domains do not nest in the fabric's groups", "[topology]") {
  // 16 GPUs in nodes of 4, scale-up domains of 12 (the last partial) over a Clos with 2 nodes
  // per leaf: GPUs 8-11 and 12-15 first share a fabric group without sharing a domain, a pair
  // GPU 0 has with no one. Every pair's level cost must be its route's cost.
  const Scenario s = parse_scenario(
      "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_up: {preset: nvswitch-h100, domain: 12},\n"
      "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 2}}\nmodel: llama3-8b\n",
      "t.yaml", {}, cluster_presets());
  const Topology t = build_cluster(s.cluster);
  REQUIRE(t.num_cost_levels() > 0);
  std::size_t checked = 0;
  for (NodeId a = 0; a < 16; ++a) {
    for (NodeId b = 0; b < 16; ++b) {
      if (a == b) continue;
      const std::size_t level = t.cost_level(a, b);
      REQUIRE(level != Topology::kNoLevel);
      const auto routed = t.path_cost(t.route(a, b));
      INFO(a << " -> " << b << " level " << level);
      CHECK(t.level_cost(level).bandwidth.value() == routed.bandwidth.value());
      CHECK(t.level_cost(level).latency.value() == Approx(routed.latency.value()).epsilon(1e-12));
      ++checked;
    }
  }
  CHECK(checked == 240);
}

TEST_CASE("topology cluster.degraded_links: a cable at a share of its bandwidth, both ways, nothing else changed", "[topology]") {
  const std::string cluster =
      "cluster: {gpu: h100-sxm, nodes: 4, gpus_per_node: 4, scale_up: {preset: nvswitch-h100, domain: 12},\n"
      "          scale_out: {preset: ib-ndr, topology: clos, nodes_per_leaf: 2, spines: 2}";
  auto build = [&](const std::string& degraded) {
    return build_cluster(parse_scenario(cluster + degraded + "}\nmodel: llama3-8b\n", "t.yaml", {}, cluster_presets()).cluster);
  };
  const Topology healthy = build("");
  const Topology t = build(",\n degraded_links: [{link: gpu9-leaf5, factor: 0.25}, {link: leaf1-spine0, factor: 0.5},\n"
                           "                  {link: leaf1-spine0, factor: 0.5}]");
  CHECK(t.has_failures());  // cost levels no longer hold
  CHECK(t.cost_level(0, 9) == Topology::kNoLevel);
  const NodeId gpu9 = *t.find_node("gpu9"), leaf5 = *t.find_node("leaf5");
  const NodeId leaf1 = *t.find_node("leaf1"), spine0 = *t.find_node("spine0");
  std::size_t changed = 0;
  for (LinkId l = 0; l < t.num_links(); ++l) {
    const NodeId a = t.link_source(l), b = t.link_target(l);
    const double want = healthy.link(l).bandwidth.value() *
                        ((a == gpu9 && b == leaf5) || (a == leaf5 && b == gpu9)       ? 0.25
                         : (a == leaf1 && b == spine0) || (a == spine0 && b == leaf1) ? 0.25  // 0.5 twice
                                                                                        : 1.0);
    INFO(t.node_name(a) << " -> " << t.node_name(b));
    CHECK(t.link(l).bandwidth.value() == want);
    CHECK(t.link(l).latency.value() == healthy.link(l).latency.value());
    changed += want != healthy.link(l).bandwidth.value();
  }
  CHECK(changed == 4);
  // The graph's edges (GraphML) carry it too; routes are unchanged.
  for (auto e : boost::make_iterator_range(edges(t.graph()))) {
    CHECK(t.graph()[e].bandwidth.value() == t.link(t.graph()[e].id).bandwidth.value());
  }
  CHECK(t.route(9, 13) == healthy.route(9, 13));
  CHECK(t.path_cost(t.route(9, 13)).bandwidth.value() == 0.25 * healthy.path_cost(healthy.route(9, 13)).bandwidth.value());
  // Bad input names the key.
  CHECK_THROWS_WITH(build(", degraded_links: [{link: gpu9-leaf9, factor: 0.5}]"),
                    StartsWith("cluster.degraded_links[0].link: no link 'gpu9-leaf9'"));
  CHECK_THROWS_WITH(build(", degraded_links: [{link: gpu9-leaf5, factor: 1.5}]"),
                    StartsWith("cluster.degraded_links[0].factor: is the share"));
  CHECK_THROWS_WITH(build(", degraded_links: [{link: gpu9-leaf5}]"), Contains("factor"));
  CHECK_THROWS_WITH(build(", degraded_links: []"), StartsWith("cluster.degraded_links: lists no link"));
}
