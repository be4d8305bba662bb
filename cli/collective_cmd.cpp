// `wallsim collective TOPOLOGY --op OP --bytes SIZE`: one collective timed and printed as
// nccl-tests prints it (size, count, type, redop, time, algbw, busbw).
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "collectives/network_model.hpp"
#include "core/error.hpp"
#include "core/presets.hpp"
#include "core/text.hpp"
#include "report/hdf5.hpp"
#include "report/tables.hpp"
#include "topology/export.hpp"
#include "topology/spec.hpp"

namespace wallsim::cli {
namespace {

struct CollectiveFlags {
  CommonFlags common;
  FailureFlags failures;
  std::string topology, op, bytes, sweep, group = "all", algo, network = "flow", csv;
  std::string overhead = "0 us";
};

std::vector<topology::NodeId> parse_group(const std::string& text, std::size_t endpoints) {
  std::vector<topology::NodeId> g;
  if (text == "all") {
    for (std::size_t i = 0; i < endpoints; ++i) g.push_back(static_cast<topology::NodeId>(i));
    return g;
  }
  auto endpoint = [&](const std::string& s) {
    const double v = parse_count(s, "--group");
    if (v != static_cast<double>(static_cast<std::size_t>(v)) || v >= static_cast<double>(endpoints)) {
      throw Error("--group", "endpoint " + s + " does not exist (endpoints are 0.." +
                                 std::to_string(endpoints - 1) + ")");
    }
    return static_cast<topology::NodeId>(v);
  };
  for (const auto& part : split(text, ',')) {
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      g.push_back(endpoint(part));
      continue;
    }
    const auto a = endpoint(part.substr(0, dash)), b = endpoint(part.substr(dash + 1));
    if (b < a) throw Error("--group", "range '" + part + "' runs backwards");
    for (auto e = a; e <= b; ++e) g.push_back(e);
  }
  std::vector<topology::NodeId> sorted = g;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw Error("--group", "names an endpoint twice");
  }
  return g;
}

/// The most rows a --sweep prints: 8 B to 8 EiB doubling.
constexpr std::size_t kMaxSweepRows = 64;
/// The largest --overhead per message: NCCL's are microseconds; a second is already absurd.
constexpr double kMaxOverheadSeconds = 1.0;

std::vector<Bytes> sizes(const CollectiveFlags& f) {
  if (!f.sweep.empty()) {
    const auto colon = f.sweep.find(':');
    if (colon == std::string::npos) throw Error("--sweep", "'" + f.sweep + "' is not MIN:MAX");
    const Bytes lo = parse<Bytes>(f.sweep.substr(0, colon), "--sweep", true);
    const Bytes hi = parse<Bytes>(f.sweep.substr(colon + 1), "--sweep", true);
    if (lo.value() < 1.0 || hi < lo) throw Error("--sweep", "needs 1 <= MIN <= MAX");
    std::vector<Bytes> out;
    for (double b = lo.value(); b <= hi.value() * (1 + 1e-12); b *= 2) {
      if (out.size() == kMaxSweepRows) {
        throw Error("--sweep", "'" + f.sweep + "' doubles past " + std::to_string(kMaxSweepRows) + " sizes; narrow it");
      }
      out.push_back(Bytes::of(b));
    }
    return out;
  }
  if (f.bytes.empty()) throw Error("--bytes", "missing: give --bytes SIZE or --sweep MIN:MAX");
  const Bytes b = parse<Bytes>(f.bytes, "--bytes", true);
  if (b.value() <= 0.0) throw Error("--bytes", "must be positive");
  return {b};
}

void run(const CollectiveFlags& f) {
  const topology::Topology t = build_fabric(f.topology, f.common, f.failures);
  const collectives::Op op = collectives::parse_op(f.op, "--op");
  std::optional<collectives::Algo> algo;
  if (!f.algo.empty()) algo = collectives::parse_algo(f.algo, "--algo");
  const auto model = collectives::NetworkModel::build(f.network, "--network");
  const auto group = parse_group(f.group, t.num_endpoints());
  if (group.size() < 2) throw Error("--group", "a collective needs at least 2 endpoints");
  collectives::CostParams params;
  params.flows_per_connection = t.info().flows_per_connection;  // a scenario's cluster.scale_out key
  params.overhead = parse<Seconds>(f.overhead, "--overhead");
  if (params.overhead.value() < 0.0 || params.overhead.value() > kMaxOverheadSeconds) {
    throw Error("--overhead", "'" + f.overhead + "' is outside 0 to 1 s per message");
  }
  const collectives::CollectiveOptions opt;
  const bool reduces = op == collectives::Op::kAllReduce || op == collectives::Op::kReduce ||
                       op == collectives::Op::kReduceScatter;
  const bool per_rank = op == collectives::Op::kAllGather || op == collectives::Op::kReduceScatter;

  std::ostringstream text, csv;
  char line[256];
  text << "# wallsim collective: " << to_string(op) << " on " << group.size() << " endpoints of "
       << t.info().kind << ", network model " << model->name()
       << (params.flows_per_connection > 1 ? ", " + std::to_string(params.flows_per_connection) + " flows per connection" : "")
       << "\n";
  std::snprintf(line, sizeof line, "#%12s %13s %9s %7s %11s %9s %9s  %s\n", "size", "count", "type",
                "redop", "time", "algbw", "busbw", "algo");
  text << line;
  std::snprintf(line, sizeof line, "#%12s %13s %9s %7s %11s %9s %9s\n", "(B)", "(elements)", "", "",
                "(us)", "(GB/s)", "(GB/s)");
  text << line;
  csv << "bytes,count,time_s,algbw_Bps,busbw_Bps,algo\n";
  nlohmann::json rows = nlohmann::json::array();
  report::Table table;
  std::vector<double> t_bytes, t_count, t_time, t_algbw, t_busbw;
  std::vector<std::string> t_algo;
  std::vector<double> link_bytes;  // of the last (largest) size
  double last_time = 0.0;
  ProgressBar bar("collective", f.common);
  const auto all_sizes = sizes(f);
  for (std::size_t k = 0; k < all_sizes.size(); ++k) {
    const Bytes size = all_sizes[k];
    const double n_sizes = static_cast<double>(all_sizes.size());
    params.progress = [&bar, k, n_sizes](double d) { bar.update((static_cast<double>(k) + d) / n_sizes); };
    const auto choice = collectives::choose_schedule(t, op, group, size, opt, params, algo, *model);
    const collectives::Schedule& s = choice.schedule;
    const double time = choice.time.value();
    const double algbw = size.value() / time;
    const double busbw = algbw * collectives::busbw_factor(op, group.size());
    const double count = size.value() / 4.0 / (per_rank ? static_cast<double>(group.size()) : 1.0);
    std::snprintf(line, sizeof line, " %12.0f %13.0f %9s %7s %11.2f %9.2f %9.2f  %s\n", size.value(),
                  count, "float", reduces ? "sum" : "none", time * 1e6, algbw / 1e9, busbw / 1e9,
                  to_string(s.algo).c_str());
    text << line;
    csv << topology::exact_number(size.value()) << ',' << topology::exact_number(count) << ','
        << topology::exact_number(time) << ',' << topology::exact_number(algbw) << ','
        << topology::exact_number(busbw) << ',' << to_string(s.algo) << '\n';
    rows.push_back({{"bytes", size.value()}, {"count", count}, {"time_s", time}, {"algbw_Bps", algbw},
                    {"busbw_Bps", busbw}, {"algo", to_string(s.algo)}});
    t_bytes.push_back(size.value());
    t_count.push_back(count);
    t_time.push_back(time);
    t_algbw.push_back(algbw);
    t_busbw.push_back(busbw);
    t_algo.push_back(to_string(s.algo));
    if (!f.common.hdf5.empty()) {
      link_bytes.assign(t.num_links(), 0.0);
      collectives::add_link_bytes(t, std::span<const collectives::Schedule>(&s, 1), link_bytes);
      last_time = time;
    }
  }
  PendingFiles files;
  if (!f.common.json.empty()) {
    const nlohmann::json j = {{"op", to_string(op)}, {"ranks", group.size()}, {"network", model->name()},
                              {"flows_per_connection", params.flows_per_connection}, {"rows", rows}};
    files.add(f.common.json, report::json_text(j));
  }
  if (!f.common.hdf5.empty()) {
    report::Hdf5File h5;
    describe(h5, f.topology, f.common);
    h5.attributes("/summary", {{"op", to_string(op)}, {"ranks", group.size()}, {"network", model->name()},
                               {"topology", t.info().kind}});
    table.add("bytes", t_bytes).add("count", t_count).add("time_s", t_time).add("algbw_Bps", t_algbw);
    table.add("busbw_Bps", t_busbw).add("algo", t_algo);
    h5.table("/collective", table);
    h5.table("/links", report::links_table(t, link_bytes, Seconds::of(last_time)));  // the largest size's
    files.add(f.common.hdf5, h5.bytes());
  }
  if (!f.csv.empty()) files.add(f.csv, csv.str());
  if (!f.common.quiet && f.common.json != "-" && f.csv != "-") std::cout << text.str();
  files.write_all();
}

}  // namespace

void register_collective(CLI::App& app, Action& action) {
  auto f = std::make_shared<CollectiveFlags>();
  CLI::App* cmd = app.add_subcommand("collective", "Time one collective, printed as nccl-tests prints it");
  cmd->add_option("TOPOLOGY", f->topology, "A scenario file or a spec string")->required();
  cmd->add_option("--op", f->op, "all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, reduce, send_recv")
      ->required();
  cmd->add_option("--bytes", f->bytes, "Buffer size as nccl-tests counts it, e.g. 1GiB");
  cmd->add_option("--sweep", f->sweep, "MIN:MAX, doubling per row (nccl-tests -b MIN -e MAX -f 2)")
      ->excludes(cmd->get_option("--bytes"));
  cmd->add_option("--group", f->group, "Endpoints in rank order: all, 0-7, 0,8,16 (default all)");
  cmd->add_option("--algo", f->algo, "ring, tree, halving_doubling, hierarchical, direct, mesh2d (default: fastest)");
  cmd->add_option("--network", f->network, "analytic or flow (default flow)");
  cmd->add_option("--overhead", f->overhead, "Software overhead per message (default 0 us)");
  add_output_option(*cmd, "--csv", f->csv, "Write the rows as CSV");
  add_common_flags(*cmd, f->common);
  add_hdf5_flag(*cmd, f->common);
  add_failure_flags(*cmd, f->failures);
  cmd->callback([f, &action] { action = [f] { run(*f); }; });
}

}  // namespace wallsim::cli
