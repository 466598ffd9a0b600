// A gate for log lines that a peer can cause at will (a refused upgrade, say): at most one line per
// interval passes, and it says how many were held back since the previous one. What each event
// counts in the metrics is not affected.
//
// Owned by HandlerCore, one per pod. Thread safety: admit() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace realtime::detail {

class ThrottledLog {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ThrottledLog(Clock::duration interval) noexcept : interval_(interval.count()) {}

  // When this event may be logged: the number of events held back since the last line logged.
  // Otherwise nullopt, and the event is counted among those held back.
  std::optional<std::uint64_t> admit(Clock::time_point now = Clock::now()) noexcept {
    const Clock::rep now_ticks = now.time_since_epoch().count();
    Clock::rep last = last_.load(std::memory_order_relaxed);
    if ((last != kNever && now_ticks - last < interval_) ||
        !last_.compare_exchange_strong(last, now_ticks, std::memory_order_relaxed)) {
      held_back_.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    return held_back_.exchange(0, std::memory_order_relaxed);
  }

 private:
  static constexpr Clock::rep kNever = INT64_MIN;
  const Clock::rep interval_;
  std::atomic<Clock::rep> last_{kNever};
  std::atomic<std::uint64_t> held_back_{0};
};

}  // namespace realtime::detail
