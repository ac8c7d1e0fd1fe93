#include "host/run/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace cflow::run {

namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  }
  return text;
}

std::size_t terminal_width() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 20) return size.ws_col;
  return 120;
}

}  // namespace

Progress::Progress(bool enabled, std::int64_t first, std::int64_t end, std::int64_t done)
    : enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) == 1),
      first_(first),
      end_(end),
      session_start_(done),
      start_(Clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

void Progress::update(std::int64_t done, const StepRecord& record) {
  if (!enabled_) return;
  const auto now = Clock::now();
  const bool last = done >= end_;
  if (tty_) {
    if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const std::int64_t every = std::max<std::int64_t>(1, (end_ - first_ + 9) / 10);
    if (!last && (done - first_) % every != 0 && now - last_draw_ < std::chrono::minutes(1)) return;
  }
  last_draw_ = now;
  std::string text = line(done, record, now);
  if (tty_) {
    const std::size_t width = terminal_width();
    if (text.size() >= width) text.resize(width - 1);
    std::cerr << "\r" << text << "\x1b[K" << std::flush;
    drawn_ = true;
  } else {
    std::cerr << text << "\n";
  }
}

void Progress::message(const std::string& text) {
  end_line();
  std::cerr << text << "\n";
}

void Progress::end_line() {
  if (drawn_) std::cerr << "\n";
  drawn_ = false;
}

std::string Progress::line(std::int64_t done, const StepRecord& record, Clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? double(done - session_start_) / elapsed : 0;
  const double fraction = end_ > first_ ? double(done - first_) / double(end_ - first_) : 1;
  constexpr int kBar = 20;
  const int filled = std::clamp(int(fraction * kBar), 0, kBar);
  char head[160];
  std::snprintf(head, sizeof head, "[%s%s] %lld/%lld  %.3g steps/s  ETA %s", std::string(filled, '#').c_str(),
                std::string(kBar - filled, '.').c_str(), static_cast<long long>(done - first_),
                static_cast<long long>(end_ - first_), rate,
                rate > 0 ? format_duration(double(end_ - done) / rate).c_str() : "?");
  std::string text = head;
  for (const auto& [kind, p] : record.processes) {
    char part[128];
    const double sharpness = p.effective_eigs.empty() ? std::nan("") : p.effective_eigs.front();
    std::snprintf(part, sizeof part, "  %s L %.4g S %.3g%s", to_string(kind).c_str(), p.train_loss, sharpness,
                  p.stopped ? " (stopped)" : "");
    text += part;
  }
  return text;
}

}  // namespace cflow::run
