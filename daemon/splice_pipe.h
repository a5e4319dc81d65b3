// SplicePipe: moves a bulk tunnel's bytes from one socket to the other with
// splice(2), through a pipe, without copying them into user space.
//
// Why: a tunnel that reads into memory and writes back out copies every
// byte twice on the proxy's core, through 1 MiB blocks; with several bulk
// tunnels at once those blocks crowd the caches and the proxy's core is the
// bottleneck (BENCHMARKS.md, 8 x 256 MiB). splice() hands the socket
// buffer's pages to the pipe and from the pipe to the other socket: the
// proxy never touches the bytes. Tunnel::spliceReady says when it is used.
// HAProxy's `option splice-auto` does the same for its TCP relays.
//
// One pipe serves the whole loop: a transfer runs within one read callback
// and leaves the pipe empty. What the destination would not take at once is
// read out of the pipe into pool blocks and written the usual way
// (`Transfer::left`), so ordering and backpressure stay the Tunnel's.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace switchyard {

class SplicePipe {
 public:
  // The pipe's capacity; also the most one transfer moves.
  static constexpr size_t kCapacity = 1024 * 1024;

  // The loop's pipe, created on first use; nullptr when this process cannot
  // have one now (no descriptor left) or splice() refused a socket once
  // (EINVAL, ENOSYS, EOPNOTSUPP, EPERM): then tunnels copy, as without
  // splice.
  static SplicePipe* get();

  struct Transfer {
    // Bytes taken from `from`; 0: `from` sent EOF; < 0: -errno reading it
    // (-EAGAIN: nothing to read after all).
    ssize_t taken = 0;
    // Of those, how many `to` would not take now: they wait in the pipe
    // for readLeft(). `to_error` is -errno when writing `to` failed.
    size_t left = 0;
    int to_error = 0;
  };
  // Moves up to kCapacity bytes from socket `from` to socket `to`, both
  // non-blocking. The pipe must be empty (readLeft() took any rest).
  Transfer move(int from, int to);
  // Reads up to `len` of the bytes left in the pipe into `out`; returns how
  // many (the pipe holds them, so this does not fail short of a bug).
  size_t readLeft(char* out, size_t len);

  // For tests: whether a pipe exists (never creates one).
  static bool created();
  // For tests: forget an earlier refusal.
  static void enableAgain();

 private:
  SplicePipe(int read_end, int write_end) : read_end_(read_end), write_end_(write_end) {}
  int read_end_;
  int write_end_;
};

}  // namespace switchyard
