// The flows CSV of SPEC.md: `id,src,dst,bytes,start_s` in; the same plus `finish_s,links` out.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "collectives/flow_model.hpp"

namespace wallsim::collectives {

struct FlowRow {
  std::string id;
  topology::NodeId src = 0, dst = 0;
  Bytes bytes;
  Seconds start;
};

/// The most flows one list holds (memory grows with them: rows, routes and solver state).
inline constexpr std::size_t kMaxFlows = 10'000'000;

/// Parses the CSV text (a leading UTF-8 byte-order mark skipped); errors name `origin:line`.
/// Endpoints must exist in `t`; an empty list or one over kMaxFlows is an Error.
std::vector<FlowRow> parse_flows_csv(const std::string& text, const std::string& origin,
                                     const topology::Topology& t);

/// Routes each row (ECMP keyed by the row's position) into a Flow.
std::vector<Flow> route_flows(const topology::Topology& t, const std::vector<FlowRow>& rows);

/// Writes the input columns plus finish_s and the space-separated link ids of each path.
void write_flows_csv(std::ostream& out, const std::vector<FlowRow>& rows,
                     const std::vector<Flow>& flows, const std::vector<Seconds>& finish);

}  // namespace wallsim::collectives
