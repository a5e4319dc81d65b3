// BusyPoll: after the loop has read something, keep it polling with a zero
// timeout for up to `limits.busy_poll` instead of sleeping in epoll_wait.
//
// Why: on a virtual machine, waking a CPU that went to sleep costs tens of
// microseconds (measured: about 30 µs per wake-up on the 2-vCPU VMs of
// docs/BENCHMARKS.md), and a forwarded request wakes the proxy twice. A loop
// that is still polling when the next packet arrives picks it up without a
// wake-up. HAProxy's `busy-polling` spins all the time; this one spins only
// within a window after activity, so an idle daemon still sleeps. Off by
// default: it trades CPU time (up to one core while traffic flows) for
// latency, which a gateway may want and a laptop does not.
//
// How: an idle handle makes libuv poll with a zero timeout; a check handle,
// run after every poll, starts it when reads happened since the last check
// and stops it once the window has passed without any.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>

namespace switchyard {

class BusyPoll {
 public:
  explicit BusyPoll(uv_loop_t* loop);
  BusyPoll(const BusyPoll&) = delete;
  BusyPoll& operator=(const BusyPoll&) = delete;

  // 0 turns it off. Takes effect at the next loop turn (config reloads).
  void setWindow(std::chrono::milliseconds window);
  // Closes both handles; the object may be destroyed once the loop ran
  // their close callbacks (they only touch the handles).
  void close();

  // Called for every read the loop makes (allocReadBuffer) and every accept.
  static void noteActivity() { ++activity_; }

  // For tests: whether the loop is currently kept polling.
  bool spinning() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&idle_)) != 0; }

 private:
  void onCheck();

  uv_check_t check_{};
  uv_idle_t idle_{};
  uint64_t window_ns_ = 0;
  uint64_t seen_activity_ = 0;
  uint64_t last_active_ns_ = 0;
  bool closed_ = false;
  // The daemon runs one loop thread; reads happen on it only.
  static inline uint64_t activity_ = 0;
};

}  // namespace switchyard
