// BusyPoll: after the loop has read something, keep it polling with a zero
// timeout for a while instead of sleeping in epoll_wait.
//
// Why: on a virtual machine, waking a CPU that went to sleep costs tens of
// microseconds (measured: about 30 µs per wake-up on the 2-vCPU VMs of
// docs/BENCHMARKS.md), and a forwarded request wakes the proxy twice. A loop
// that is still polling when the next packet arrives picks it up without a
// wake-up. HAProxy's `busy-polling` spins all the time; this one spins only
// within a window after activity, and the window adapts (SpinWindow), so an
// idle daemon, or one whose traffic comes in sparse bursts, sleeps as usual.
//
// How: an idle handle makes libuv poll with a zero timeout; a check handle,
// run after every poll, starts it when reads happened since the last check
// and stops it once the window has passed without any.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

namespace switchyard {

// How long to spin after activity: the policy of Linux's guest halt-polling
// governor (drivers/cpuidle/governors/haltpoll.c), applied to the loop. When
// the loop slept and the next activity came sooner than `limits.busy_poll`,
// a longer spin would have caught it without a wake-up: the window doubles
// (starting at 50 µs). When the loop slept longer than the limit, spinning
// was wasted: the window halves. So traffic that answers within the limit
// keeps the loop polling, and anything sparser costs next to nothing. Pure:
// the caller supplies the times.
class SpinWindow {
 public:
  static constexpr uint64_t kGrowStartNs = 50'000;
  // Below this, a spin is shorter than the poll that would run it.
  static constexpr uint64_t kShortestNs = kGrowStartNs / 8;

  // 0 turns spinning off. A lower limit also caps the current window.
  void setLimit(uint64_t limit_ns);
  // The loop had stopped spinning (or never started) and woke for activity
  // `quiet_ns` after the previous activity.
  void noteWakeAfter(uint64_t quiet_ns);

  uint64_t ns() const { return window_ns_; }
  uint64_t limitNs() const { return limit_ns_; }

 private:
  uint64_t limit_ns_ = 0;
  uint64_t window_ns_ = 0;
};

class BusyPoll {
 public:
  explicit BusyPoll(uv_loop_t* loop);
  BusyPoll(const BusyPoll&) = delete;
  BusyPoll& operator=(const BusyPoll&) = delete;

  // The longest window; 0 turns it off. Takes effect at the next loop turn
  // (config reloads).
  void setLimit(std::chrono::microseconds limit);
  // Closes both handles; the object may be destroyed once the loop ran
  // their close callbacks (they only touch the handles).
  void close();

  // Called for every read the loop makes (allocReadBuffer) and every accept.
  static void noteActivity() { ++activity_; }

  // For tests: whether the loop is currently kept polling, and for how long.
  bool spinning() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&idle_)) != 0; }
  std::chrono::nanoseconds window() const { return std::chrono::nanoseconds(window_.ns()); }

 private:
  void onCheck();

  uv_check_t check_{};
  uv_idle_t idle_{};
  SpinWindow window_;
  uint64_t seen_activity_ = 0;
  uint64_t last_active_ns_ = 0;
  bool closed_ = false;
  // The daemon runs one loop thread; reads happen on it only.
  static inline uint64_t activity_ = 0;
};

}  // namespace switchyard
