#include "core/optimize.hpp"

#include <cmath>

namespace wallsim {

double golden_section_min(const std::function<double(double)>& f, double a, double b, double tolerance,
                          int max_calls) {
  const double g = (std::sqrt(5.0) - 1.0) / 2.0;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  for (int calls = 2; b - a > tolerance && calls < max_calls; ++calls) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return 0.5 * (a + b);
}

}  // namespace wallsim
