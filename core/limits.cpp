#include "core/limits.hpp"

#include "core/error.hpp"

namespace wallsim::limits {

std::string with_commas(long long n) {
  const unsigned long long u = n < 0 ? 0ULL - static_cast<unsigned long long>(n) : static_cast<unsigned long long>(n);
  const std::string digits = std::to_string(u);
  std::string out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void out_of_range(std::string_view key, std::string_view value, long long max, std::string_view why) {
  throw Error(std::string(key), std::string(value) + " is out of range (at most " + with_commas(max) +
                                    (why.empty() ? "" : ": " + std::string(why)) + ")");
}

long long checked_mul(long long a, long long b, long long max, std::string_view key, std::string_view what) {
  long long p = 0;
  if (__builtin_mul_overflow(a, b, &p) || p > max) {
    throw Error(std::string(key), std::string(what) + " = " + with_commas(a) + " x " + with_commas(b) +
                                      " is more than " + with_commas(max));
  }
  return p;
}

}  // namespace wallsim::limits
