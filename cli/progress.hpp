// A progress bar on stderr for long work (search, sweep, reliability): shown when stderr is a
// terminal, or always with --progress; never with --quiet; never on stdout, so --json - stays
// clean. It appears only once the work has taken a second, and redraws at most 10 times a second.
#pragma once

#include <chrono>
#include <string>

namespace wallsim::cli {

struct CommonFlags;

class ProgressBar {
 public:
  ProgressBar(std::string label, const CommonFlags& flags);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  /// `done` in [0, 1].
  void update(double done);

 private:
  std::string label_;
  bool enabled_ = false, drawn_ = false, forced_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace wallsim::cli
