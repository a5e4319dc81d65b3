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
#pragma once

#include <uv.h>

#include <algorithm>

#include "daemon/runtime.h"

namespace switchyard {

enum class WriteOutcome {
  kWrittenNow,  // all bytes are in the kernel; `w` is freed; Method won't run
  kQueued,      // the rest is queued; Method runs when it completes
  kFailed,      // `w` is freed; Method won't run
};

template <auto Method, typename Owner>
WriteOutcome writeNowOrQueue(uv_stream_t* stream, Owner* owner, WriteRequest* w) {
  uv_buf_t bufs[3];
  unsigned n = 0;
  if (!w->head.empty()) {
    bufs[n++] = uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size()));
  }
  if (w->middle.len > 0) {
    bufs[n++] = w->middle;
  }
  if (!w->tail.empty()) {
    bufs[n++] = uv_buf_init(w->tail.data(), static_cast<unsigned>(w->tail.size()));
  }
  int written = uv_try_write(stream, bufs, n);
  if (written < 0 && written != UV_EAGAIN && written != UV_ENOSYS) {
    // A broken socket: uv_write would fail the same way, later.
    delete w;
    return WriteOutcome::kFailed;
  }
  size_t skip = written > 0 ? static_cast<size_t>(written) : 0;
  if (skip == w->bytes()) {
    delete w;
    return WriteOutcome::kWrittenNow;
  }
  // Queue what the kernel did not take; the buffers stay owned by `w`.
  unsigned first = 0;
  while (skip > 0 && skip >= bufs[first].len) {
    skip -= bufs[first].len;
    ++first;
  }
  bufs[first].base += skip;
  bufs[first].len -= skip;
  w->owner = owner;
  w->req.data = w;
  int rc = uv_write(&w->req, stream, bufs + first, n - first, [](uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> done(static_cast<WriteRequest*>(req->data));
    (static_cast<Owner*>(done->owner)->*Method)(status, done->bytes());
  });
  if (rc != 0) {
    delete w;
    return WriteOutcome::kFailed;
  }
  return WriteOutcome::kQueued;
}

}  // namespace switchyard
