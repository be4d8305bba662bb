#include "core/error.hpp"

namespace wallsim {
namespace {

/// A location as the message names it: a key of a 5 MB `--set` would otherwise fill the
/// terminal (values are clipped where they are quoted: text.hpp quote_value()).
std::string clip(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 characters
  return s.substr(0, n) + "\u2026 (" + std::to_string(s.size()) + " characters)";
}

}  // namespace

Error::Error(std::string where, std::string message)
    : std::runtime_error(where.empty() ? clip(message, 2000) : clip(where, 200) + ": " + clip(message, 2000)),
      where_(std::move(where)),
      message_(std::move(message)) {}

}  // namespace wallsim
