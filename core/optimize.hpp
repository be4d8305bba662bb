// One-dimensional minimisation shared by the calibration fit (validation/) and the checkpoint
// interval search (failures/).
#pragma once

#include <functional>

namespace wallsim {

/// Golden-section search for the minimum of `f`, assumed unimodal on [lo, hi]: shrinks the
/// bracket until it is at most `tolerance` wide or `f` has been called `max_calls` times, and
/// returns the bracket's midpoint. Ties keep the left part.
double golden_section_min(const std::function<double(double)>& f, double lo, double hi, double tolerance,
                          int max_calls);

}  // namespace wallsim
