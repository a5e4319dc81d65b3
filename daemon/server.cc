#include "daemon/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "daemon/connection.h"
#include "daemon/net_address.h"

namespace switchyard {

Server::Server(uv_loop_t* loop) : loop_(loop) {
  for (int signum : {SIGINT, SIGTERM}) {
    auto* sig = new uv_signal_t;
    uv_signal_init(loop_, sig);
    sig->data = this;
    uv_signal_start(sig, &Server::onSignal, signum);
    signals_.push_back(sig);
  }
}

Server::~Server() = default;

bool Server::listen(const std::vector<std::string>& addresses) {
  for (const std::string& text : addresses) {
    sockaddr_storage addr;
    std::string error;
    if (!parseListenAddress(text, &addr, &error)) {
      spdlog::error("listen {}: {}", text, error);
      return false;
    }
    auto* tcp = new uv_tcp_t;
    uv_tcp_init(loop_, tcp);
    tcp->data = this;
    listeners_.push_back(tcp);
    int rc = uv_tcp_bind(tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp), 511, &Server::onNewConnection);
    }
    if (rc != 0) {
      spdlog::error("listen {}: {}", text, uv_strerror(rc));
      return false;
    }
    sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&bound), &len);
    spdlog::info("listening on {}", formatAddress(reinterpret_cast<const sockaddr*>(&bound)));
  }
  return true;
}

void Server::shutdown() {
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  auto free_handle = [](uv_handle_t* h) { delete reinterpret_cast<uv_any_handle*>(h); };
  for (uv_tcp_t* tcp : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), free_handle);
  }
  listeners_.clear();
  for (uv_signal_t* sig : signals_) {
    uv_close(reinterpret_cast<uv_handle_t*>(sig), free_handle);
  }
  signals_.clear();
  // Copy: close() calls back into onConnectionClosed only from the close
  // callback, but keep the iteration independent of that anyway.
  std::vector<Connection*> open = connections_;
  for (Connection* conn : open) {
    conn->close();
  }
}

void Server::onConnectionClosed(Connection* conn) {
  connections_.erase(std::remove(connections_.begin(), connections_.end(), conn),
                     connections_.end());
}

void Server::onNewConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0) {
    spdlog::warn("accept: {}", uv_strerror(status));
    return;
  }
  auto* conn = new Connection(self);
  if (!conn->accept(listener)) {
    return;  // accept() closed and will free it
  }
  self->connections_.push_back(conn);
}

void Server::onSignal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Server*>(handle->data);
  spdlog::info("signal {}: shutting down", signum);
  self->shutdown();
}

}  // namespace switchyard
