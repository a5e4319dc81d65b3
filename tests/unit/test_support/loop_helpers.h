// Running a libuv loop from a test body: poll until a condition holds, let
// stray callbacks show up, and close stack handles before they go away.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <thread>

namespace switchyard::test {

// Runs the loop without blocking until `done()` holds or `limit` passes;
// false when the limit passed first.
inline bool runUntil(uv_loop_t* loop, const std::function<bool()>& done,
                     std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    uv_run(loop, UV_RUN_NOWAIT);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// Runs the loop for `duration`, to let stray callbacks show up.
inline void spin(uv_loop_t* loop, std::chrono::milliseconds duration) {
  runUntil(
      loop, [] { return false; }, duration);
}

// Closes a handle that lives on the test's stack and waits for the close
// callback, so the memory is not gone while libuv still refers to it.
inline void closeAndWait(uv_loop_t* loop, uv_handle_t* handle) {
  bool closed = false;
  handle->data = &closed;
  uv_close(handle, [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
  runUntil(loop, [&] { return closed; });
}

// A timer on the test's stack that is closed (and waited for) when the test
// body ends, also when an ASSERT ended it early.
struct TestTimer {
  explicit TestTimer(uv_loop_t* l) : loop(l) { uv_timer_init(loop, &timer); }
  ~TestTimer() { closeAndWait(loop, reinterpret_cast<uv_handle_t*>(&timer)); }
  TestTimer(const TestTimer&) = delete;
  TestTimer& operator=(const TestTimer&) = delete;
  uv_loop_t* loop;
  uv_timer_t timer;
};

}  // namespace switchyard::test
