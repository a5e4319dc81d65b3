#include "daemon/busy_poll.h"

namespace switchyard {

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

void BusyPoll::setWindow(std::chrono::milliseconds window) {
  if (closed_) {
    return;
  }
  window_ns_ = static_cast<uint64_t>(window.count()) * 1'000'000;
  if (window_ns_ == 0) {
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
    last_active_ns_ = now;
    // The callback does nothing: an active idle handle alone makes the next
    // poll return at once. Starting an active handle again is a no-op.
    uv_idle_start(&idle_, [](uv_idle_t*) {});
    return;
  }
  if (spinning() && now - last_active_ns_ >= window_ns_) {
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
