// Server: owns the event loop, the listeners and the signal handles.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

namespace switchyard {

class Connection;

class Server {
 public:
  explicit Server(uv_loop_t* loop);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every address ("host:port", "[v6]:port"); logs "listening on A:P"
  // with the real port for each. Returns false (and logs why) on failure.
  bool listen(const std::vector<std::string>& addresses);

  // Stops accepting, closes every handle it owns; the loop then ends.
  void shutdown();

  uv_loop_t* loop() const { return loop_; }
  void onConnectionClosed(Connection* conn);

 private:
  static void onNewConnection(uv_stream_t* listener, int status);
  static void onSignal(uv_signal_t* handle, int signum);

  uv_loop_t* loop_;
  std::vector<uv_tcp_t*> listeners_;      // each freed in its close callback
  std::vector<uv_signal_t*> signals_;     // SIGINT, SIGTERM
  std::vector<Connection*> connections_;  // open client connections
  bool shutting_down_ = false;
};

}  // namespace switchyard
