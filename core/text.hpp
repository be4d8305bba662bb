// Small text helpers shared by the parsers: suggestions for misspelt names, splitting, joining.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wallsim {

/// Levenshtein distance between two strings.
size_t edit_distance(std::string_view a, std::string_view b);

/// " (did you mean 'x'?)" for the closest candidate within a small distance, else "".
std::string did_you_mean(std::string_view word, std::span<const std::string> candidates);

/// Splits on `sep`; empty fields are kept.
std::vector<std::string> split(std::string_view s, char sep);

/// Joins with `sep`.
std::string join(std::span<const std::string> parts, std::string_view sep);

/// Removes leading and trailing blanks (space, tab, CR, LF).
std::string_view trim_blanks(std::string_view s);

/// A user's value quoted for a one-line message: 'abc'; past 40 characters its start and its
/// length, '11111…' (5,000,000 characters), so a huge value never floods the terminal. Line
/// breaks and other control characters show as '?'.
std::string quote_value(std::string_view value);

}  // namespace wallsim
