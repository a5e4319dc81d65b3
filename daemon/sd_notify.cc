#include "daemon/sd_notify.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace switchyard {

namespace {

uint64_t monotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// The notification protocol is "KEY=value" lines: a newline in the status
// text would smuggle in a second assignment (say READY=1), so every control
// character is flattened to a space.
std::string sanitizeStatus(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      c = ' ';
    }
  }
  return out;
}

std::string describeFd(int fd, int check) {
  std::string what = "fd " + std::to_string(fd) + ": ";
  if (check < 0) {
    return what + std::strerror(-check);
  }
  return what + "not a listening TCP socket (use ListenStream= with an IP address or port)";
}

}  // namespace

bool SystemdNotifier::enabled() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

int SystemdNotifier::ready() {
  return send("READY=1");
}

int SystemdNotifier::reloading() {
  // MONOTONIC_USEC lets systemd (253 and later) tell this reload from an
  // earlier one; older versions ignore it.
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicUsec()));
}

int SystemdNotifier::stopping() {
  return send("STOPPING=1");
}

int SystemdNotifier::status(std::string_view text) {
  std::string clean = sanitizeStatus(text);
  if (clean == last_status_) {
    return 0;
  }
  int rc = send("STATUS=" + clean);
  if (rc > 0) {
    last_status_ = std::move(clean);
  }
  return rc;
}

int SystemdNotifier::watchdog() {
  return send("WATCHDOG=1");
}

uint64_t SystemdNotifier::watchdogTimeoutUsec() {
  uint64_t usec = 0;
  // sd_watchdog_enabled() also checks WATCHDOG_PID against our pid and
  // leaves the environment alone (first argument 0), so repeated calls agree.
  if (sd_watchdog_enabled(0, &usec) <= 0) {
    return 0;
  }
  return usec;
}

uint64_t SystemdNotifier::watchdogIntervalUsec() {
  return watchdogTimeoutUsec() / 2;
}

std::string SystemdNotifier::connectionStatus(size_t open, uint64_t accepted, uint64_t generation) {
  return std::to_string(open) + (open == 1 ? " open connection, " : " open connections, ") +
         std::to_string(accepted) + " accepted, config generation " + std::to_string(generation);
}

int SystemdNotifier::send(const std::string& message) {
  if (!enabled()) {
    return 0;
  }
  int rc = sd_notify(0, message.c_str());
  if (rc < 0 && !failure_logged_) {
    failure_logged_ = true;
    spdlog::warn("sd_notify to {} failed: {} (further failures are not logged)",
                 std::getenv("NOTIFY_SOCKET"), std::strerror(-rc));
  }
  return rc;
}

std::vector<int> socketActivationFds(std::vector<std::string>* rejected) {
  std::vector<int> fds;
  // unset_environment=1: LISTEN_* describe this process only; a child that
  // inherited them would try to adopt descriptors that are not its own.
  // Read before the call: it removes them, and the message should say what
  // systemd (or whoever started us) passed.
  const char* fds_env = std::getenv("LISTEN_FDS");
  const char* pid_env = std::getenv("LISTEN_PID");
  std::string passed = std::string("LISTEN_FDS=") + (fds_env ? fds_env : "") +
                       " LISTEN_PID=" + (pid_env ? pid_env : "");
  int count = sd_listen_fds(1);
  if (count < 0) {
    std::string problem = "socket activation: cannot use " + passed + ": " + std::strerror(-count);
    spdlog::error("{}", problem);
    if (rejected != nullptr) {
      rejected->push_back(problem);
    }
    return fds;
  }
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + count; ++fd) {
    // Family 0 accepts AF_INET and AF_INET6 only; listening=1 requires
    // SO_ACCEPTCONN, so a bound but idle socket is refused too.
    int check = sd_is_socket_inet(fd, 0, SOCK_STREAM, 1, 0);
    if (check > 0) {
      int flags = fcntl(fd, F_GETFL);
      if (flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) {
        fds.push_back(fd);
        continue;
      }
      check = -errno;
    }
    std::string problem = "socket activation: " + describeFd(fd, check);
    spdlog::error("{}", problem);
    if (rejected != nullptr) {
      rejected->push_back(problem);
    }
    ::close(fd);
  }
  return fds;
}

}  // namespace switchyard
