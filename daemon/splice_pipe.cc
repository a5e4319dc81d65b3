#include "daemon/splice_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace switchyard {

namespace {

struct Instance {
  bool disabled = false;  // splice() refused a pair: copy from now on
  SplicePipe* pipe = nullptr;
};

Instance& instance() {
  static Instance one;
  return one;
}

// What splice() answers for a pair it cannot join (a kernel or socket type
// without splice support), or a seccomp filter that forbids it (EPERM, the
// errno of our own unit's SystemCallErrorNumber): not the connection's
// fault, so the tunnels go on copying.
bool unsupported(int error) {
  return error == EINVAL || error == ENOSYS || error == EOPNOTSUPP || error == EPERM;
}

}  // namespace

SplicePipe* SplicePipe::get() {
  Instance& one = instance();
  if (one.disabled) {
    return nullptr;
  }
  if (one.pipe == nullptr) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) != 0) {
      // Out of descriptors, say: copy for now, try again next time.
      return nullptr;
    }
    // A smaller pipe (an unprivileged user over pipe-user-pages-soft) still
    // works, in more, smaller moves.
    (void)::fcntl(ends[1], F_SETPIPE_SZ, static_cast<int>(kCapacity));
    // Lives as long as the process: one pipe, reused by every transfer.
    one.pipe = new SplicePipe(ends[0], ends[1]);
  }
  return one.pipe;
}

bool SplicePipe::created() {
  return instance().pipe != nullptr;
}

void SplicePipe::enableAgain() {
  instance().disabled = false;
}

SplicePipe::Transfer SplicePipe::move(int from, int to) {
  constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  Transfer t;
  ssize_t in = ::splice(from, nullptr, write_end_, nullptr, kCapacity, kFlags);
  if (in < 0) {
    if (unsupported(errno)) {
      instance().disabled = true;
    }
    t.taken = errno == EINTR || unsupported(errno) ? -EAGAIN : -errno;
    return t;
  }
  t.taken = in;
  size_t pending = static_cast<size_t>(in);
  while (pending > 0) {
    ssize_t out = ::splice(read_end_, nullptr, to, nullptr, pending, kFlags);
    if (out > 0) {
      pending -= static_cast<size_t>(out);
    } else if (out < 0 && errno == EINTR) {
      continue;
    } else {
      if (out < 0 && unsupported(errno)) {
        instance().disabled = true;  // the rest leaves through readLeft()
      } else if (out < 0 && errno != EAGAIN) {
        t.to_error = -errno;
      }
      break;
    }
  }
  if (t.to_error != 0) {
    // The tunnel ends; what it could not deliver goes nowhere, and the
    // pipe must be empty for the next transfer.
    char scratch[16 * 1024];
    while (pending > 0) {
      size_t n = readLeft(scratch, pending < sizeof scratch ? pending : sizeof scratch);
      if (n == 0) {
        break;
      }
      pending -= n;
    }
  }
  t.left = pending;
  return t;
}

size_t SplicePipe::readLeft(char* out, size_t len) {
  for (;;) {
    ssize_t n = ::read(read_end_, out, len);
    if (n >= 0) {
      return static_cast<size_t>(n);
    }
    if (errno != EINTR) {
      return 0;
    }
  }
}

}  // namespace switchyard
