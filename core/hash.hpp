// A 64-bit mix with no state: the same numbers on every machine, rank and standard library
// (results never use std::*_distribution).
#pragma once

#include <cstdint>

namespace wallsim {

/// splitmix64's finaliser (Steele, Lea and Flood, OOPSLA 2014): a bijective mix of x.
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace wallsim
