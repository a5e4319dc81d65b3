// writeNowOrQueue: a write that first tries to go out at once.
//
// Why: libuv 1.44 re-arms a socket's epoll entry (EPOLL_CTL_MOD) whenever a
// stream's write queue drains after a write request completed, even though
// the event mask did not change; on the VMs we measure on, syscalls are the
// proxy's main cost, and that is one per write. uv_try_write needs no write
// request, so a write the kernel takes whole costs exactly one write(2).
// Node's stream code does the same (DoTryWrite before DoWrite).
//
// The difference for the caller: when every byte went out now, the
// completion Method is NOT called — the caller does what its completion
// would have done, inline, knowing it is not re-entered. uv_try_write
// refuses while earlier writes are queued, so bytes never overtake others.
//
// shutdownNow: the same idea for a half-close. uv_shutdown defers shutdown(2)
// to the loop's next turn and then, in 1.44, queues an EPOLL_CTL_MOD for a
// socket that is still being read, although its event mask never changed.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <optional>

#include "daemon/runtime.h"

namespace switchyard {

enum class WriteOutcome {
  kWrittenNow,  // all bytes are in the kernel; `w` is freed; Method won't run
  kQueued,      // the rest is queued; Method runs when it completes, with
                // the count of the bytes that were queued
  kFailed,      // `w` is freed; Method won't run
};

template <auto Method, typename Owner>
WriteOutcome writeNowOrQueue(uv_stream_t* stream, Owner* owner, WriteRequest* w) {
  if (writeNow(stream, w)) {
    delete w;
    return WriteOutcome::kWrittenNow;
  }
  // `w` now holds only what the kernel did not take.
  return submitWrite<Method, Owner>(stream, owner, w) == 0 ? WriteOutcome::kQueued
                                                           : WriteOutcome::kFailed;
}

// Shuts down writing to `stream` at once when nothing is waiting to be
// written, and returns 0 or a negative UV_E* code; nullopt when bytes are
// still queued (the caller then uses uv_shutdown, which waits for them).
// Nothing may be written to `stream` afterwards.
inline std::optional<int> shutdownNow(uv_stream_t* stream) {
  uv_os_fd_t fd = -1;
  if (uv_stream_get_write_queue_size(stream) != 0 || uv_fileno(asHandle(stream), &fd) != 0) {
    return std::nullopt;
  }
  return ::shutdown(fd, SHUT_WR) == 0 ? 0 : uv_translate_sys_error(errno);
}

}  // namespace switchyard
