// Talking to systemd: readiness and watchdog notifications (sd_notify(3)) and
// socket activation (sd_listen_fds(3)). Everything here is a no-op when the
// daemon was not started by systemd: with NOTIFY_SOCKET unset nothing is sent,
// with LISTEN_FDS unset no descriptor is adopted. libsystemd reads those
// variables on every call, so a test can set them before calling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard {

// One object per daemon, owned by whoever owns the event loop. Each method
// sends one datagram to $NOTIFY_SOCKET and returns what libsystemd's
// sd_notify() returns: > 0 sent, 0 nothing sent (not under systemd, or, for
// status(), the same text as last time), < 0 a negative errno. A failure is
// logged once (later ones are not: the daemon keeps serving either way).
class SystemdNotifier {
 public:
  SystemdNotifier() = default;
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // True when $NOTIFY_SOCKET is set, i.e. systemd (Type=notify) listens.
  static bool enabled();

  // "READY=1": every listener is bound (or adopted) and the loop is about to
  // run. Also sent again after a reload, successful or not.
  int ready();
  // "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>": a SIGHUP reload
  // starts. Must be followed by ready() when it ends.
  int reloading();
  // "STOPPING=1": the daemon stops accepting and starts draining.
  int stopping();
  // "STATUS=<text>", shown by `systemctl status`. Control characters
  // (including newlines, which would start another assignment) become
  // spaces. Text equal to the last status sent is not sent again, so this
  // can be called from a periodic timer at no cost.
  int status(std::string_view text);
  // "WATCHDOG=1": the event loop is alive. Send it every
  // watchdogIntervalUsec() from a timer on the loop itself, so that a stuck
  // loop stops the pings and systemd restarts the service.
  int watchdog();

  // The watchdog timeout systemd enforces ($WATCHDOG_USEC, WatchdogSec=),
  // or 0 when the watchdog is off or meant for another process.
  static uint64_t watchdogTimeoutUsec();
  // How often to call watchdog(): half the timeout, as sd_watchdog_enabled(3)
  // recommends; 0 when the watchdog is off.
  static uint64_t watchdogIntervalUsec();

  // The STATUS= text the daemon reports, e.g.
  // "12 open connections, 3456 accepted, config generation 2".
  static std::string connectionStatus(size_t open, uint64_t accepted, uint64_t generation);

 private:
  int send(const std::string& message);

  std::string last_status_;      // the last STATUS= text delivered
  bool failure_logged_ = false;  // one warning per process is enough
};

// Listening sockets passed by systemd (switchyard.socket), in the order of
// the ListenStream= lines, starting at fd 3. Only listening TCP sockets
// (AF_INET or AF_INET6, SOCK_STREAM) are returned; they are made non-blocking
// and close-on-exec, ready for the accept loop. Any other descriptor passed
// (a datagram or AF_UNIX socket, a socket that does not listen, a file) is
// logged, described in *rejected when it is non-null, and closed.
// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are removed from the environment
// so that nothing started later inherits them. Empty when the daemon was not
// socket-activated: the caller then binds `listen:` itself. Call it once.
std::vector<int> socketActivationFds(std::vector<std::string>* rejected = nullptr);

}  // namespace switchyard
