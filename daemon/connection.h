// Connection: one client connection and its explicit state machine.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <string>

namespace switchyard {

class Server;

class Connection {
 public:
  enum class Phase { kReadingRequest, kResponding, kClosing };

  explicit Connection(Server* server);
  // Accepts from `listener` and starts reading; false if accept failed.
  bool accept(uv_stream_t* listener);
  // Starts the single close path: the object is deleted in the close callback.
  void close();

 private:
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void onClosed(uv_handle_t* handle);
  static int onMessageComplete(llhttp_t* parser);
  void respond(int status, const std::string& reason, const std::string& body);

  Server* server_;
  uv_tcp_t client_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  Phase phase_ = Phase::kReadingRequest;
  char read_buf_[16384];
};

}  // namespace switchyard
