// The error type for bad input. Three kinds of error live in wallsim (STYLE.md rule 11):
// wallsim::Error for bad input, values/std::optional for expected outcomes (a plan that does not
// fit), and assertions for broken invariants. A simulated failure is a model event, never this.
#pragma once

#include <stdexcept>
#include <string>

namespace wallsim {

/// Bad input: carries the config path (or file:line) of the bad value. The CLI prints
/// what() and exits with code 2.
class Error : public std::runtime_error {
 public:
  /// `where` is a config path ("parallel.tp"), a file and line ("flows.csv:12"), or empty.
  Error(std::string where, std::string message);
  explicit Error(std::string message) : Error({}, std::move(message)) {}

  /// The config path or location the error names; empty when none applies.
  [[nodiscard]] const std::string& where() const { return where_; }
  /// The message without the location.
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  std::string where_;
  std::string message_;
};

}  // namespace wallsim
