// Golden-section search against closed-form minima.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/optimize.hpp"

TEST_CASE("core golden-section search finds a parabola's vertex and respects its budget", "[core]") {
  int calls = 0;
  auto parabola = [&](double x) {
    ++calls;
    return (x - 2.0) * (x - 2.0) + 1.0;  // minimum at x = 2
  };
  CHECK(wallsim::golden_section_min(parabola, 0.0, 5.0, 1e-6, 1000) == Approx(2.0).margin(1e-6));
  // Each call past the first two shrinks the bracket by 0.618: 5 x 0.618^(k) <= 1e-6 needs k = 33 (ln(2e-7) / ln(0.618) = 32.05).
  CHECK(calls == 2 + 33);
  calls = 0;
  (void)wallsim::golden_section_min(parabola, 0.0, 5.0, 0.0, 16);
  CHECK(calls == 16);
  // A minimum at the edge: the bracket closes on it.
  CHECK(wallsim::golden_section_min([](double x) { return std::exp(x); }, -3.0, 1.0, 1e-9, 1000) ==
        Approx(-3.0).margin(1e-8));
}
