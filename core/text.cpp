#include "core/text.hpp"

#include <algorithm>
#include <numeric>

namespace wallsim {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(std::string_view word, std::span<const std::string> candidates) {
  // A name the word begins ("h100" of "h100-sxm") beats any edit-distance match.
  const std::string* prefixed = nullptr;
  for (const auto& c : candidates) {
    if (!word.empty() && c.size() > word.size() && c.compare(0, word.size(), word) == 0 &&
        (prefixed == nullptr || c.size() < prefixed->size())) {
      prefixed = &c;
    }
  }
  if (prefixed != nullptr) return " (did you mean '" + *prefixed + "'?)";
  const std::string* best = nullptr;
  size_t best_d = 0;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (best == nullptr || d < best_d) {
      best = &c;
      best_d = d;
    }
  }
  if (best == nullptr) return {};
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  if (best_d > limit) return {};
  return " (did you mean '" + *best + "'?)";
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string join(std::span<const std::string> parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string_view trim_blanks(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string quote_value(std::string_view value) {
  constexpr size_t kShown = 40;
  std::string out = "'";
  const bool cut = value.size() > kShown;
  size_t n = cut ? kShown : value.size();
  // Do not cut a UTF-8 sequence in two: back up to the start of the character.
  while (cut && n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
  }
  if (!cut) return out + "'";
  // Thousands separated by commas, as the README writes counts.
  std::string digits = std::to_string(value.size()), grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return out + "\u2026' (" + grouped + " characters)";
}

}  // namespace wallsim
