// The tables of a simulated step as report::Table, shared by --hdf5 (and the plots): one row
// per GPU, per timeline slice, per link.
#pragma once

#include <nlohmann/json.hpp>

#include "engine/step.hpp"
#include "parallelism/plan.hpp"
#include "report/hdf5.hpp"
#include "core/scenario.hpp"
#include "topology/graph.hpp"

namespace wallsim::report {

/// Lanes of TimelineEvent::lane: compute, exposed communication, data-parallel, pipeline
/// (the last only from the event engine).
inline constexpr int kLanes = 4;
/// Lane names of TimelineEvent::lane.
const char* lane_name(int lane);
/// "stage s (rank r)": a pipeline stage by its first rank.
std::string stage_label(const parallelism::Plan& p, int stage);

/// `j` as JSON text with a trailing newline (indented by `indent`, or compact when negative).
/// A NaN or infinite number is a std::logic_error naming where it sits: nlohmann would write
/// null, and a non-finite figure is a bug upstream, never an output.
std::string json_text(const nlohmann::json& j, int indent = 2);

/// Chrome trace-event JSON (Perfetto, chrome://tracing) of a step with a timeline: one process
/// per pipeline stage (its first rank), a thread per lane, the tasks' names.
std::string trace_json(const engine::StepResult& r, const parallelism::Plan& p);

/// The per-step figures a sweep or search tabulates and plots (step_time_s, mfu, ...).
const std::vector<std::string>& step_metric_names();
/// One of step_metric_names() of `r` (std::logic_error for another name).
double step_metric(const engine::StepResult& r, const std::string& name);
/// An axis label with units ("step time (s)").
std::string step_metric_label(const std::string& name);

/// One row per GPU of the plan (rank, stage, busy_s, comm_s, bubble_s, other_s, energy_j): each
/// rank has its stage's representative times (every rank of a stage runs the same program).
Table ranks_table(const engine::StepResult& r, const parallelism::Plan& p);

/// The step's timeline (rank, kind, name, start_s, end_s): the first rank of each stage.
Table timeline_table(const engine::StepResult& r, const parallelism::Plan& p);

/// Every directed link (id, from, to, class, bandwidth_Bps, bytes, busy_s, utilization):
/// busy_s = bytes / bandwidth, the time the link needs at full rate; utilization = busy_s over
/// `span`. `bytes` by link id (empty = none carried).
Table links_table(const topology::Topology& t, const std::vector<double>& bytes, Seconds span);

/// The step as SVG: the timeline of one rank per pipeline stage (compute, exposed
/// communication, the data-parallel stream) above the roofline chart of its kernels on `gpu`.
std::string step_svg(const engine::StepResult& r, const parallelism::Plan& p, const GpuSpec& gpu,
                     const std::string& title);

}  // namespace wallsim::report
