#include "cli/progress.hpp"

#include "engine/distribute.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "cli/commands.hpp"

namespace wallsim::cli {

ProgressBar::ProgressBar(std::string label, const CommonFlags& flags)
    : label_(std::move(label)),
      enabled_(!flags.quiet && engine::World::get().root() && (flags.progress || isatty(STDERR_FILENO) != 0)),
      forced_(flags.progress),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputs("\n", stderr);
}

void ProgressBar::update(double done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // --progress draws from the start (scripts and tests ask for it); a terminal after 1 s.
  if (!forced_ && now - start_ < std::chrono::seconds(1)) return;
  if (drawn_ && now - last_ < std::chrono::milliseconds(100) && done < 1.0) return;
  last_ = now;
  drawn_ = true;
  done = std::clamp(done, 0.0, 1.0);
  constexpr int kWidth = 30;
  const int full = static_cast<int>(done * kWidth + 0.5);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s [%.*s%*s] %3.0f %% %6.1f s", label_.c_str(), full, "##############################",
               kWidth - full, "", 100.0 * done, elapsed);
  if (done >= 1.0) {  // finished: end the line before the command prints its results
    std::fputs("\n", stderr);
    drawn_ = false;
    enabled_ = false;
  }
  std::fflush(stderr);
}

}  // namespace wallsim::cli
