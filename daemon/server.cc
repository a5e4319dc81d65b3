#include "daemon/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "daemon/admin_listener.h"
#include "daemon/connection.h"
#include "daemon/connector.h"
#include "daemon/decision_log.h"
#include "daemon/http_message.h"
#include "daemon/metrics.h"
#include "daemon/net_address.h"
#include "daemon/proxy_status.h"
#include "daemon/resolver.h"
#include "daemon/upstream_http.h"
#include "rules/config_loader.h"

namespace switchyard {

namespace {

// Kinds for warnRateLimited().
enum WarnKind { kWarnEmfile = 0, kWarnAccept = 1, kWarnLimit = 2, kWarnAcl = 3 };

// How long the upstream pool keeps an idle connection: shorter than the
// keep-alive timeout of common servers (nginx 75 s, Apache 5 s is the
// outlier that the pool's close detection handles), never longer than our
// own idle timeout.
constexpr std::chrono::milliseconds kPoolIdleTimeout{30'000};

// Idle upstream connections the pool may keep, per next hop and in all. A
// client connection uses at most one upstream connection at a time, so
// limits.max_connections idle ones let every client's next request find one
// (a busy origin behind many keep-alive clients is the common case). Never
// more than a quarter of the descriptors we may open: idle sockets must not
// starve accept() or new upstream connections.
size_t idleUpstreamBound(const rules::LimitsConfig& limits) {
  size_t bound = limits.max_connections;
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    bound = std::min<size_t>(bound, files.rlim_cur / 4);
  }
  return std::max<size_t>(bound, 1);
}

std::string joinErrors(const std::vector<std::string>& errors) {
  std::string out;
  for (const std::string& e : errors) {
    out += (out.empty() ? "" : "; ") + e;
  }
  return out;
}

// Best effort, without blocking: tells a client we turn away at accept time
// why, through the same recordError() as every other refusal.
void sendAndClose(int fd, const ProxyError& error) {
  std::string bytes = recordError(error, /*close=*/true, /*head_only=*/false, nullptr);
  ssize_t ignored = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)ignored;
  ::close(fd);
}

bool isWildcardAddress(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (addr.ss_family == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr);
  }
  return true;
}

}  // namespace

Server::Server(uv_loop_t* loop, LiveConfigPtr config, DecisionLog* decisions, Options options)
    : loop_(loop), options_(std::move(options)), rt_(loop) {
  rt_.config = std::move(config);
  rt_.decisions = decisions;
  resolver_ = std::make_unique<Resolver>(loop_);
  resolver_->setOverrides(rt_.config->config().resolve);
  connector_ = std::make_unique<Connector>(loop_);
  auto pool_idle = std::min(kPoolIdleTimeout, rt_.config->config().limits.idle_timeout);
  pool_ = std::make_unique<UpstreamPool>(loop_, pool_idle);
  size_t idle_bound = idleUpstreamBound(rt_.config->config().limits);
  pool_->setLimits(idle_bound, idle_bound);
  busy_poll_ = std::make_unique<BusyPoll>(loop_);
  busy_poll_->setLimit(rt_.config->config().limits.busy_poll);
  rt_.resolver = resolver_.get();
  rt_.connector = connector_.get();
  rt_.pool = pool_.get();
  rt_.on_drained = [this] { finishShutdown(); };
  metrics_ = std::make_unique<Metrics>();
  rt_.metrics = metrics_.get();
  metrics_->setConfigGeneration(rt_.config->generation());
  metrics_->recordReload(true, static_cast<int64_t>(::time(nullptr)));
  if (decisions != nullptr) {
    metrics_->setDroppedLinesSource([decisions] { return decisions->dropped(); });
  }

  static constexpr std::array<int, 4> kSignals{SIGINT, SIGTERM, SIGHUP, SIGUSR1};
  for (size_t i = 0; i < kSignals.size(); ++i) {
    uv_signal_init(loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(
        &signals_[i],
        [](uv_signal_t* handle, int signum) {
          static_cast<Server*>(handle->data)->onSignal(signum);
        },
        kSignals[i]);
  }
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(loop_, &accept_pause_timer_);
  accept_pause_timer_.data = this;
  uv_timer_init(loop_, &notify_timer_);
  notify_timer_.data = this;
  uv_timer_init(loop_, &log_check_timer_);
  log_check_timer_.data = this;
  if (decisions != nullptr) {
    uv_timer_start(
        &log_check_timer_,
        [](uv_timer_t* t) { static_cast<Server*>(t->data)->checkDecisionLogDrops(); },
        kLogCheckIntervalMs, kLogCheckIntervalMs);
    // The check alone must not keep the loop running.
    uv_unref(asHandle(&log_check_timer_));
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Server::~Server() {
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
  }
}

// ---------------------------------------------------------------------------
// Listeners and the accept loop.

bool Server::listen(const std::vector<std::string>& addresses) {
  for (const std::string& text : addresses) {
    sockaddr_storage addr;
    std::string error;
    if (!parseListenAddress(text, &addr, &error)) {
      spdlog::error("listen {}: {}", text, error);
      return false;
    }
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      spdlog::error("listen {}: socket: {}", text, std::strerror(errno));
      return false;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr.ss_family == AF_INET6) {
      // "[::]:3128" and "0.0.0.0:3128" can then both be listed.
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    socklen_t addr_len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0 ||
        ::listen(fd, 511) != 0) {
      spdlog::error("listen {}: {}", text, std::strerror(errno));
      ::close(fd);
      return false;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    addListener(fd, bound);
  }
  return true;
}

bool Server::adopt(const std::vector<int>& fds) {
  for (int fd : fds) {
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
      spdlog::error("socket activation: fd {}: {}", fd, std::strerror(errno));
      ::close(fd);
      return false;
    }
    addListener(fd, bound);
  }
  return !fds.empty();
}

void Server::addListener(int fd, const sockaddr_storage& bound) {
  rt_.addListener(bound);
  auto listener = std::make_unique<Listener>();
  listener->server = this;
  listener->fd = fd;
  listener->name = formatAddress(reinterpret_cast<const sockaddr*>(&bound));
  if (!isWildcardAddress(bound)) {
    listener->via_token = viaToken(listener->name);
  }
  // Linux copies TCP_NODELAY from the listener to each accepted socket
  // (server_test checks it), which saves a setsockopt per connection.
  int one = 1;
  listener->nodelay = ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
  uv_poll_init(loop_, &listener->poll, fd);
  listener->poll.data = listener.get();
  listeners_.push_back(std::move(listener));
  Listener* l = listeners_.back().get();
  uv_poll_start(&l->poll, UV_READABLE, [](uv_poll_t* handle, int status, int) {
    auto* self = static_cast<Listener*>(handle->data);
    if (status == 0) {
      self->server->onAcceptable(*self);
    }
  });
  l->polling = true;
  spdlog::info("listening on {}", l->name);
}

bool Server::listenAdmin() {
  const std::string& address = rt_.config->config().admin;
  if (address.empty()) {
    return true;
  }
  admin_ = std::make_unique<AdminListener>(&rt_, [this] { return adminContext(); });
  std::string error;
  if (!admin_->listen(address, &error)) {
    spdlog::error("admin listener {}: {}", address, error);
    return false;
  }
  return true;
}

std::string Server::adminAddress() const {
  return admin_ ? admin_->boundAddress() : std::string();
}

AdminContext Server::adminContext() const {
  AdminContext ctx;
  ctx.snapshot = rt_.config->snapshot;
  ctx.process_env = &options_.env;
  ctx.metrics = metrics_.get();
  ctx.ready = ready_ && !rt_.draining;
  // The PAC names the first proxy listener, with its real port.
  if (!listeners_.empty()) {
    ctx.proxy_host_port = listeners_.front()->name;
  }
  return ctx;
}

// spdlog's writer thread drops lines when its queue is full rather than
// block the loop; this is where an operator learns about it.
uint64_t Server::checkDecisionLogDrops() {
  if (rt_.decisions == nullptr) {
    return 0;
  }
  uint64_t dropped = rt_.decisions->dropped();
  if (dropped <= dropped_reported_) {
    return 0;
  }
  uint64_t fresh = dropped - dropped_reported_;
  spdlog::warn("decision log dropped {} lines ({} since start): its queue was full", fresh,
               dropped);
  dropped_reported_ = dropped;
  return fresh;
}

void Server::notifyReady() {
  ready_ = true;
  notifier_.ready();
  notifier_.status(
      SystemdNotifier::connectionStatus(rt_.sessionCount(), accepted_, rt_.config->generation()));
  if (!SystemdNotifier::enabled()) {
    return;
  }
  uint64_t interval_ms = SystemdNotifier::watchdogIntervalUsec() / 1000;
  if (interval_ms == 0 || interval_ms > 5000) {
    interval_ms = 5000;  // STATUS= stays reasonably fresh
  }
  uv_timer_start(
      &notify_timer_, [](uv_timer_t* t) { static_cast<Server*>(t->data)->onNotifyTimer(); },
      interval_ms, interval_ms);
}

void Server::onNotifyTimer() {
  // The ping comes from the loop itself: a loop that is stuck stops pinging,
  // and systemd restarts the daemon.
  if (SystemdNotifier::watchdogIntervalUsec() != 0) {
    notifier_.watchdog();
  }
  notifier_.status(
      SystemdNotifier::connectionStatus(rt_.sessionCount(), accepted_, rt_.config->generation()));
}

std::vector<std::string> Server::boundAddresses() const {
  std::vector<std::string> out;
  for (const auto& l : listeners_) {
    out.push_back(l->name);
  }
  return out;
}

void Server::onAcceptable(Listener& listener) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    BusyPoll::noteActivity();
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      }
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        emfileTrick(listener);
        return;
      }
      warnRateLimited(kWarnAccept, std::string("accept: ") + std::strerror(errno));
      return;
    }
    admit(fd, peer, listener);
  }
  // More may be waiting: the poll handle reports the socket again on the
  // next loop turn, after the other handles had theirs.
}

void Server::admit(int fd, const sockaddr_storage& peer, const Listener& listener) {
  const LiveConfig& live = *rt_.config;
  const rules::LimitsConfig& limits = live.config().limits;
  const auto* peer_addr = reinterpret_cast<const sockaddr*>(&peer);
  if (rt_.draining) {
    ::close(fd);
    return;
  }
  if (rt_.sessionCount() >= limits.max_connections) {
    ProxyError e;
    e.status = 503;
    e.reason = "Too many connections";
    e.kind = ProxyErrorKind::kConnectionLimitReached;
    e.details = "limits.max_connections (" + std::to_string(limits.max_connections) +
                ") reached; try again later";
    sendAndClose(fd, e);
    warnRateLimited(kWarnLimit, "refused a connection: limits.max_connections (" +
                                    std::to_string(limits.max_connections) + ") reached");
    return;
  }
  std::string ip = addressIp(peer_addr);
  if (rt_.clientConnections(ip) >= limits.max_connections_per_client) {
    ProxyError e;
    e.status = 503;
    e.reason = "Too many connections from this client";
    e.kind = ProxyErrorKind::kConnectionLimitReached;
    e.details = "limits.max_connections_per_client (" +
                std::to_string(limits.max_connections_per_client) + ") reached for " + ip;
    sendAndClose(fd, e);
    warnRateLimited(kWarnLimit, "refused a connection from " + ip +
                                    ": limits.max_connections_per_client reached");
    return;
  }
  bool allowed = live.allow_clients.allows(peer_addr);
  if (!allowed) {
    // The client gets a 403 for its request (through the Connection, so it
    // is answered and logged like every other refusal); operators get this.
    warnRateLimited(kWarnAcl, "client " + formatAddress(peer_addr) +
                                  " is not in access.allow_clients: its requests get 403");
  }
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(loop_, tcp);
  if (uv_tcp_open(tcp, fd) != 0) {
    ::close(fd);
    closeAndDelete(asHandle(tcp));
    return;
  }
  ++accepted_;
  Connection::Accepted accepted;
  accepted.peer = peer_addr;
  accepted.via_token = listener.via_token;
  accepted.nodelay = listener.nodelay;
  Connection::start(&rt_, tcp, allowed, accepted);
}

// Without a free descriptor, accept() fails while the connection stays
// queued, and the listener stays readable: the loop would spin. Giving up
// the reserve descriptor lets us accept the waiting connections and close
// them at once (the clients see a reset instead of hanging), after which we
// take the descriptor back. If even that fails, listeners pause briefly.
void Server::emfileTrick(Listener& listener) {
  int closed = 0;
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
    while (closed < kEmfileCloseBatch) {
      int fd = ::accept4(listener.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) {
          continue;
        }
        break;
      }
      ::close(fd);
      ++closed;
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  warnRateLimited(kWarnEmfile, "accept: out of file descriptors (" +
                                   std::string(std::strerror(EMFILE)) + "); closed " +
                                   std::to_string(closed) + " waiting connection(s) on " +
                                   listener.name);
  if (reserve_fd_ < 0 || closed == 0) {
    pauseAccepting();
  }
}

void Server::pauseAccepting() {
  if (accepting_paused_ || rt_.draining) {
    return;
  }
  accepting_paused_ = true;
  for (auto& l : listeners_) {
    if (l->polling) {
      uv_poll_stop(&l->poll);
    }
  }
  uv_timer_start(
      &accept_pause_timer_, [](uv_timer_t* t) { static_cast<Server*>(t->data)->resumeAccepting(); },
      kAcceptPauseMs, 0);
}

void Server::resumeAccepting() {
  accepting_paused_ = false;
  if (reserve_fd_ < 0) {
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  for (auto& l : listeners_) {
    if (l->polling) {
      uv_poll_start(&l->poll, UV_READABLE, [](uv_poll_t* handle, int status, int) {
        auto* self = static_cast<Listener*>(handle->data);
        if (status == 0) {
          self->server->onAcceptable(*self);
        }
      });
    }
  }
}

void Server::warnRateLimited(int kind, const std::string& message) {
  uint64_t now = uv_now(loop_);
  auto k = static_cast<size_t>(kind);
  if (warn_last_ms_[k] != 0 && now - warn_last_ms_[k] < 1000) {
    ++warn_suppressed_[k];
    return;
  }
  if (warn_suppressed_[k] > 0) {
    spdlog::warn("{} ({} similar message(s) suppressed)", message, warn_suppressed_[k]);
  } else {
    spdlog::warn("{}", message);
  }
  warn_last_ms_[k] = now == 0 ? 1 : now;
  warn_suppressed_[k] = 0;
}

// ---------------------------------------------------------------------------
// Signals: reload, reopen, drain.

void Server::onSignal(int signum) {
  switch (signum) {
    case SIGHUP:
      reload();
      return;
    case SIGUSR1:
      if (rt_.decisions != nullptr) {
        rt_.decisions->reopen();
        spdlog::info("decision log reopened");
      }
      return;
    default:
      spdlog::info("signal {}: shutting down", signum);
      beginDrain();
      return;
  }
}

void Server::reload() {
  notifier_.reloading();
  bool ok = reloadConfig();
  metrics_->recordReload(ok, static_cast<int64_t>(::time(nullptr)));
  metrics_->setConfigGeneration(rt_.config->generation());
  notifier_.ready();
}

bool Server::reloadConfig() {
  uint64_t generation = rt_.config->generation() + 1;
  rules::Config config;
  if (options_.config_file.empty()) {
    config = rules::defaultConfig(options_.env);
  } else {
    rules::LoadResult result = rules::loadConfigFile(options_.config_file, options_.env);
    if (!result.config) {
      spdlog::error("config reload failed: {} (keeping generation {})", joinErrors(result.errors),
                    rt_.config->generation());
      return false;
    }
    config = std::move(*result.config);
  }
  std::vector<std::string> errors;
  rules::ConfigSnapshotPtr snapshot =
      rules::ConfigSnapshot::build(std::move(config), generation, &errors);
  LiveConfigPtr live;
  std::string error;
  if (snapshot == nullptr) {
    spdlog::error("config reload failed: {} (keeping generation {})", joinErrors(errors),
                  rt_.config->generation());
    return false;
  }
  if (!buildLiveConfig(snapshot, &live, &error)) {
    spdlog::error("config reload failed: {} (keeping generation {})", error,
                  rt_.config->generation());
    return false;
  }
  const rules::Config& old_config = rt_.config->config();
  const rules::Config& new_config = live->config();
  std::vector<std::string> needs_restart;
  if (!options_.listen_overridden && old_config.listen != new_config.listen) {
    needs_restart.push_back("listen");
  }
  if (old_config.admin != new_config.admin) {
    needs_restart.push_back("admin");
  }
  if (old_config.tls.ca_dir != new_config.tls.ca_dir) {
    needs_restart.push_back("tls.ca_dir");
  }
  if (old_config.cache.dir != new_config.cache.dir) {
    needs_restart.push_back("cache.dir");
  }
  if (old_config.log.decisions != new_config.log.decisions ||
      old_config.log.format != new_config.log.format) {
    needs_restart.push_back("log.decisions/log.format");
  }
  for (const std::string& what : needs_restart) {
    spdlog::warn("config reload: {} changed; restart switchyard to apply it", what);
  }
  spdlog::set_level(spdlog::level::from_str(new_config.log.level));
  resolver_->setOverrides(new_config.resolve);
  size_t idle_bound = idleUpstreamBound(new_config.limits);
  pool_->setLimits(idle_bound, idle_bound);
  busy_poll_->setLimit(new_config.limits.busy_poll);
  rt_.config = std::move(live);
  spdlog::info("config reloaded (generation {})", generation);
  return true;
}

void Server::shutdown() {
  beginDrain();
}

void Server::beginDrain() {
  if (rt_.draining) {
    spdlog::info("second stop request: closing {} open connection(s) now", rt_.sessionCount());
    abortAll();
    return;
  }
  rt_.draining = true;
  notifier_.stopping();
  closeListeners();
  uv_timer_stop(&accept_pause_timer_);
  size_t open = rt_.sessionCount();
  if (open == 0) {
    finishShutdown();
    return;
  }
  auto drain_ms = rt_.config->config().limits.drain_timeout;
  spdlog::info("draining {} open connection(s) for up to {} ms", open, drain_ms.count());
  for (Session* session : rt_.sessions()) {
    session->drain();
  }
  if (rt_.sessionCount() > 0 && !finished_) {
    uv_timer_start(
        &drain_timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<Server*>(t->data);
          spdlog::info("drain timeout: closing {} open connection(s)", self->rt_.sessionCount());
          self->abortAll();
        },
        static_cast<uint64_t>(drain_ms.count()), 0);
  }
}

void Server::abortAll() {
  if (rt_.sessionCount() == 0) {
    finishShutdown();
    return;
  }
  for (Session* session : rt_.sessions()) {
    session->abort();
  }
}

void Server::closeListeners() {
  for (auto& l : listeners_) {
    l->polling = false;
    closeHandle<&Listener::onClosed, Listener>(asHandle(&l->poll));
    // uv_close() stops the poll watcher (and drops the fd from epoll) right
    // away, so the socket can go now: new connections are refused at once
    // instead of waiting in the backlog until the next loop turn.
    if (l->fd >= 0) {
      ::close(l->fd);
      l->fd = -1;
    }
  }
}

void Server::Listener::onClosed(uv_handle_t*) {}

void Server::finishShutdown() {
  if (finished_) {
    return;
  }
  finished_ = true;
  closeListeners();
  for (uv_signal_t& sig : signals_) {
    uv_close(asHandle(&sig), nullptr);
  }
  // Closing the handles restored the default actions, which would kill the
  // process on a repeated SIGTERM (or a late SIGHUP) during the last
  // moments of an orderly exit: ignore them instead, the exit is near.
  for (int signum : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) {
    ::signal(signum, SIG_IGN);
  }
  uv_close(asHandle(&drain_timer_), nullptr);
  uv_close(asHandle(&accept_pause_timer_), nullptr);
  uv_close(asHandle(&notify_timer_), nullptr);
  uv_close(asHandle(&log_check_timer_), nullptr);
  checkDecisionLogDrops();
  // The admin listener stayed open through the drain (/readyz said 503).
  if (admin_) {
    admin_->close();
  }
  pool_->close();
  busy_poll_->close();
  connector_->close();
  resolver_->close();
  if (rt_.decisions != nullptr) {
    rt_.decisions->flush();
  }
}

}  // namespace switchyard
