// Server: owns the event loop's long-lived parts: the listening sockets (our
// own accept loop, so that we can bound the work per wakeup and handle
// EMFILE ourselves), the shared Runtime (config snapshot, resolver,
// connector, upstream pool), and the signals:
//   SIGHUP  re-reads the config file and swaps the snapshot (new connections
//           use the new one; open ones keep theirs), or keeps the old one
//           and logs why the new one was refused;
//   SIGUSR1 reopens the decision log file (logrotate);
//   SIGTERM / SIGINT stop accepting, let open connections finish for up to
//           limits.drain_timeout, then close the rest; a second one closes
//           everything at once. The loop then ends and the process exits 0.
// It also owns the metrics registry and the admin listener (`admin:`), which
// stays open while draining so that /readyz can say 503, and a periodic
// check that warns when the decision log had to drop lines.
#pragma once

#include <uv.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "daemon/admin.h"
#include "daemon/busy_poll.h"
#include "daemon/runtime.h"
#include "daemon/sd_notify.h"
#include "rules/environment.h"

namespace switchyard {

class AdminListener;
class Connector;
class DecisionLog;
class Metrics;
class Resolver;
class UpstreamPool;

class Server {
 public:
  // Connections accepted per wakeup of a listener before the loop serves
  // everyone else (libuv's stream.c reads 32 times per wakeup for the same
  // reason).
  static constexpr int kAcceptBatch = 32;
  // Descriptors we accept and close per EMFILE episode, so that a flood
  // cannot keep us in the trick forever either.
  static constexpr int kEmfileCloseBatch = 1024;
  // When even the reserve descriptor cannot be reopened, listeners pause
  // this long instead of spinning on a readable socket they cannot accept.
  static constexpr uint64_t kAcceptPauseMs = 200;
  // How often the decision log's dropped-line count is looked at; a growth
  // is logged once per period, so a flood of drops costs one line per 10 s.
  static constexpr uint64_t kLogCheckIntervalMs = 10'000;

  struct Options {
    std::string config_file;         // empty: the built-in default + environment
    rules::EnvMap env;               // the process environment, read once at start
    bool listen_overridden = false;  // --listen: `listen:` is not ours to compare
  };

  Server(uv_loop_t* loop, LiveConfigPtr config, DecisionLog* decisions, Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every address ("host:port", "[v6]:port"); logs "listening on A:P"
  // with the real port for each. Returns false (and logs why) on failure.
  bool listen(const std::vector<std::string>& addresses);
  // Uses listening sockets handed over by systemd (socketActivationFds())
  // instead; logs "listening on A:P" for each. Takes ownership of the fds.
  bool adopt(const std::vector<int>& fds);
  // Binds the admin listener when the config has `admin:`, after the proxy
  // listeners (its "admin listening on A:P" line comes after theirs). True
  // when there is none to bind; false (and logged) when binding failed.
  bool listenAdmin();
  // Every listener is ready: tells systemd (READY=1, when it listens),
  // makes /readyz answer 200 and starts the status / watchdog timer.
  void notifyReady();

  // As SIGTERM: stop accepting and drain.
  void shutdown();

  Runtime& runtime() { return rt_; }
  Metrics& metrics() { return *metrics_; }
  // "127.0.0.1:41234" for each bound listener, in `listen` order.
  std::vector<std::string> boundAddresses() const;
  // The admin listener's bound address; empty when there is none.
  std::string adminAddress() const;
  // What the admin endpoints answer from (without the request's Host).
  AdminContext adminContext() const;
  // Warns ("decision log dropped N lines") when the decision log dropped
  // lines since the last check, and returns how many. Runs every
  // kLogCheckIntervalMs and once more at the end.
  uint64_t checkDecisionLogDrops();

 private:
  struct Listener {
    Server* server;
    int fd;
    uv_poll_t poll;
    std::string name;  // "127.0.0.1:3128"
    // Our Via token for connections to it, when every one of them has the
    // same local address (not a wildcard listener); else empty.
    std::string via_token;
    bool nodelay = false;  // TCP_NODELAY set: accepted sockets inherit it
    bool polling = false;
    void onClosed(uv_handle_t* handle);
  };

  void addListener(int fd, const sockaddr_storage& bound);
  void onAcceptable(Listener& listener);
  void admit(int fd, const sockaddr_storage& peer, const Listener& listener);
  void emfileTrick(Listener& listener);
  void pauseAccepting();
  void resumeAccepting();
  void onSignal(int signum);
  void reload();
  // False when the new config was refused (the old one stays).
  bool reloadConfig();
  void beginDrain();
  void abortAll();
  void finishShutdown();
  void closeListeners();
  // At most one line per second for a given kind of accept trouble; the
  // next line says how many were suppressed.
  void warnRateLimited(int kind, const std::string& message);
  void onNotifyTimer();

  uv_loop_t* loop_;
  Options options_;
  Runtime rt_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<BusyPoll> busy_poll_;
  std::unique_ptr<UpstreamPool> pool_;
  std::unique_ptr<Metrics> metrics_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unique_ptr<AdminListener> admin_;
  std::array<uv_signal_t, 4> signals_{};  // SIGINT, SIGTERM, SIGHUP, SIGUSR1
  uv_timer_t drain_timer_{};
  uv_timer_t accept_pause_timer_{};
  // STATUS= updates and WATCHDOG=1 pings, only when systemd listens.
  uv_timer_t notify_timer_{};
  uv_timer_t log_check_timer_{};
  uint64_t dropped_reported_ = 0;  // decision-log drops already warned about
  SystemdNotifier notifier_;
  uint64_t accepted_ = 0;  // connections admitted since start
  // A descriptor held in reserve: on EMFILE it is closed so that accept()
  // can take (and close) the waiting connections, then it is reopened.
  int reserve_fd_ = -1;
  bool accepting_paused_ = false;
  bool finished_ = false;
  bool ready_ = false;  // notifyReady() ran: listeners bound, config loaded
  std::array<uint64_t, 4> warn_last_ms_{};
  std::array<uint64_t, 4> warn_suppressed_{};
};

}  // namespace switchyard
