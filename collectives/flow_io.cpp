#include "collectives/flow_io.hpp"

#include <charconv>
#include <cmath>
#include <ostream>

#include "core/error.hpp"
#include "core/text.hpp"
#include "topology/export.hpp"

namespace wallsim::collectives {
namespace {

double number(const std::string& field, const std::string& where, const char* column) {
  const std::string s(trim_blanks(field));
  double v = 0.0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v) || v < 0.0) {
    throw Error(where, std::string(column) + " " + quote_value(s) + " is not a non-negative number");
  }
  return v;
}

}  // namespace

std::vector<FlowRow> parse_flows_csv(const std::string& text, const std::string& origin,
                                     const topology::Topology& t) {
  std::vector<FlowRow> rows;
  // A UTF-8 byte-order mark (spreadsheets write one) is not part of the header.
  const std::string_view body =
      std::string_view(text).substr(std::string_view(text).rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0);
  const auto lines = split(body, '\n');
  bool header_seen = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string line(trim_blanks(lines[i]));
    const std::string where = origin + ":" + std::to_string(i + 1);
    if (line.empty() || line[0] == '#') continue;
    const auto f = split(line, ',');
    if (!header_seen) {
      header_seen = true;
      if (trim_blanks(f[0]) == "id") {
        const std::vector<std::string> want = {"id", "src", "dst", "bytes", "start_s"};
        for (std::size_t c = 0; c < want.size(); ++c) {
          if (c >= f.size() || trim_blanks(f[c]) != want[c]) {
            throw Error(where, "header must be id,src,dst,bytes,start_s");
          }
        }
        continue;
      }
    }
    if (f.size() != 5) {
      throw Error(where, "expected 5 fields (id,src,dst,bytes,start_s), got " + std::to_string(f.size()));
    }
    FlowRow r;
    r.id = std::string(trim_blanks(f[0]));
    const double src = number(f[1], where, "src"), dst = number(f[2], where, "dst");
    for (double e : {src, dst}) {
      if (e != std::floor(e) || e >= static_cast<double>(t.num_endpoints())) {
        throw Error(where, "endpoint " + format_number(e, 12) + " does not exist (endpoints are 0.." +
                               std::to_string(t.num_endpoints() - 1) + ")");
      }
    }
    r.src = static_cast<topology::NodeId>(src);
    r.dst = static_cast<topology::NodeId>(dst);
    r.bytes = Bytes::of(number(f[3], where, "bytes"));
    r.start = Seconds::of(number(f[4], where, "start_s"));
    if (rows.size() == kMaxFlows) {
      throw Error(where, "more than " + std::to_string(kMaxFlows) + " flows, the most one replay takes");
    }
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw Error(origin, "no flows (expected rows of id,src,dst,bytes,start_s)");
  return rows;
}

std::vector<Flow> route_flows(const topology::Topology& t, const std::vector<FlowRow>& rows) {
  std::vector<Flow> flows;
  flows.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    try {
      flows.push_back(Flow{t.route(r.src, r.dst, i), r.bytes, r.start, 1.0});
    } catch (const Error& e) {
      throw Error("flow " + r.id, e.message());
    }
  }
  return flows;
}

void write_flows_csv(std::ostream& out, const std::vector<FlowRow>& rows,
                     const std::vector<Flow>& flows, const std::vector<Seconds>& finish) {
  out << "id,src,dst,bytes,start_s,finish_s,links\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out << r.id << ',' << r.src << ',' << r.dst << ',' << topology::exact_number(r.bytes.value())
        << ',' << topology::exact_number(r.start.value()) << ','
        << topology::exact_number(finish[i].value()) << ',';
    for (std::size_t k = 0; k < flows[i].path.size(); ++k) out << (k ? " " : "") << flows[i].path[k];
    out << '\n';
  }
}

}  // namespace wallsim::collectives
