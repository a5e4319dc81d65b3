// AdminListener: the socket behind `admin:` in the config. It accepts
// plain HTTP/1.1 clients, refuses those outside access.admin_allow_clients
// with a readable 403, reads one request head per connection (llhttp,
// strict, at most kMaxHeadBytes within limits.header_timeout), answers it
// through handleAdminRequest() (daemon/admin.h) and closes.
//
// The admin clients are not Sessions: a drain neither waits for them nor
// stops the listener, so that /readyz can answer 503 while the proxy
// drains. The Server closes the listener (and any admin client still
// open) when it finishes its shutdown.
//
// Callback chain (admin_listener.cc keeps this order):
//   listen -> onConnection -> Client::start -> onRead -> (llhttp hooks) ->
//   respond -> onWritten -> onShutdown -> [discard reads] -> close ->
//   onClosed (the only place a Client is deleted).
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>

#include "daemon/admin.h"
#include "daemon/runtime.h"

namespace switchyard {

class AdminListener {
 public:
  // An admin request is a request line and a few headers; 8 KiB is more than
  // curl, Prometheus or a browser send, and bounds what a client can make
  // us hold.
  static constexpr size_t kMaxHeadBytes = 8192;
  // Admin clients served at once. Scrapers and people need a handful; past
  // this, new clients are closed at once so that the admin port cannot pin
  // descriptors the proxy needs.
  static constexpr size_t kMaxClients = 64;
  // After our answer and FIN, unread request bytes are discarded for this
  // long before closing, so that the client does not get a reset instead of
  // the answer.
  static constexpr uint64_t kLingerMs = 1000;

  // Everything an answer depends on except the request itself, asked for
  // anew for each request (readiness and the config change over time).
  using ContextFn = std::function<AdminContext()>;

  AdminListener(Runtime* rt, ContextFn context);
  ~AdminListener();
  AdminListener(const AdminListener&) = delete;
  AdminListener& operator=(const AdminListener&) = delete;

  // Binds "host:port" ("[v6]:port", ":port"); logs "admin listening on
  // A:P" with the real port. False and *error when it cannot.
  bool listen(const std::string& address, std::string* error);
  // "127.0.0.1:41235" once bound.
  const std::string& boundAddress() const { return name_; }
  // Closes the listening socket and every admin client; the handles are
  // gone after the loop's next turn. Safe to call twice.
  void close();

  // Clients currently open (for tests).
  size_t clientCount() const { return clients_.size(); }

 private:
  class Client;
  void onConnection(int status);
  void clientClosed(Client* client);
  void warnRefused(const std::string& peer);

  Runtime* rt_;
  ContextFn context_;
  uv_tcp_t tcp_{};
  std::string name_;
  bool bound_ = false;   // tcp_ was initialised and needs closing
  bool closed_ = false;  // close() ran
  std::unordered_set<Client*> clients_;
  uint64_t last_refusal_warning_ms_ = 0;
  uint64_t refusals_suppressed_ = 0;
};

}  // namespace switchyard
