#include "daemon/busy_poll.h"

#include <algorithm>

namespace switchyard {

void SpinWindow::setLimit(uint64_t limit_ns) {
  limit_ns_ = limit_ns;
  window_ns_ = std::min(window_ns_, limit_ns_);
}

void SpinWindow::noteWakeAfter(uint64_t quiet_ns) {
  if (quiet_ns > limit_ns_) {
    window_ns_ /= 2;
    if (window_ns_ < kShortestNs) {
      window_ns_ = 0;
    }
  } else if (quiet_ns > window_ns_) {
    window_ns_ = std::min(limit_ns_, std::max(kGrowStartNs, window_ns_ * 2));
  }
}

BusyPoll::BusyPoll(uv_loop_t* loop) {
  uv_check_init(loop, &check_);
  check_.data = this;
  uv_idle_init(loop, &idle_);
  idle_.data = this;
  // Neither keeps the loop alive: a daemon that has closed everything else
  // exits even while spinning.
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  uv_unref(reinterpret_cast<uv_handle_t*>(&idle_));
}

void BusyPoll::setLimit(std::chrono::microseconds limit) {
  if (closed_) {
    return;
  }
  window_.setLimit(static_cast<uint64_t>(limit.count()) * 1000);
  if (window_.limitNs() == 0) {
    uv_check_stop(&check_);
    uv_idle_stop(&idle_);
    return;
  }
  seen_activity_ = activity_;
  uv_check_start(&check_,
                 [](uv_check_t* handle) { static_cast<BusyPoll*>(handle->data)->onCheck(); });
}

void BusyPoll::onCheck() {
  uint64_t now = uv_hrtime();
  if (activity_ != seen_activity_) {
    seen_activity_ = activity_;
    if (!spinning()) {
      window_.noteWakeAfter(now - last_active_ns_);
    }
    last_active_ns_ = now;
    if (window_.ns() != 0) {
      // The callback does nothing: an active idle handle alone makes the
      // next poll return at once. Starting an active handle is a no-op.
      uv_idle_start(&idle_, [](uv_idle_t*) {});
    }
    return;
  }
  if (spinning() && now - last_active_ns_ >= window_.ns()) {
    uv_idle_stop(&idle_);
  }
}

void BusyPoll::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
}

}  // namespace switchyard
