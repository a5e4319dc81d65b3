#include "daemon/connection.h"

#include <spdlog/spdlog.h>

#include "daemon/server.h"

namespace switchyard {

namespace {

// Captureless bridge from a C callback's handle to its Connection.
template <typename Handle>
Connection* fromHandle(Handle* h) {
  return static_cast<Connection*>(h->data);
}

struct WriteReq {
  uv_write_t req;
  std::string data;
};

}  // namespace

Connection::Connection(Server* server) : server_(server) {
  uv_tcp_init(server_->loop(), &client_);
  client_.data = this;
  llhttp_settings_init(&settings_);
  settings_.on_message_complete = &Connection::onMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

bool Connection::accept(uv_stream_t* listener) {
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&client_)) != 0) {
    close();
    return false;
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&client_), &Connection::onAlloc,
                &Connection::onRead);
  return true;
}

void Connection::close() {
  if (phase_ == Phase::kClosing) {
    return;
  }
  phase_ = Phase::kClosing;
  uv_close(reinterpret_cast<uv_handle_t*>(&client_), &Connection::onClosed);
}

void Connection::onClosed(uv_handle_t* handle) {
  Connection* self = fromHandle(handle);
  self->server_->onConnectionClosed(self);
  delete self;
}

void Connection::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Connection* self = fromHandle(handle);
  *buf = uv_buf_init(self->read_buf_, sizeof(self->read_buf_));
}

void Connection::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection* self = fromHandle(stream);
  if (nread < 0) {
    self->close();
    return;
  }
  if (nread == 0 || self->phase_ != Phase::kReadingRequest) {
    return;
  }
  llhttp_errno_t err = llhttp_execute(&self->parser_, buf->base, static_cast<size_t>(nread));
  if (err == HPE_PAUSED) {
    return;  // the request was answered
  }
  if (err != HPE_OK) {
    self->respond(400, "Bad Request",
                  std::string("malformed request: ") + llhttp_get_error_reason(&self->parser_));
  }
}

int Connection::onMessageComplete(llhttp_t* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->respond(501, "Not Implemented", "switchyard cannot do this yet\n");
  return HPE_PAUSED;
}

void Connection::respond(int status, const std::string& reason, const std::string& body) {
  phase_ = Phase::kResponding;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&client_));
  auto* w = new WriteReq;
  w->req.data = this;
  w->data = "HTTP/1.1 " + std::to_string(status) + " " + reason +
            "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&client_), &buf, 1, [](uv_write_t* req, int) {
    auto* wr = reinterpret_cast<WriteReq*>(req);
    auto* conn = static_cast<Connection*>(req->data);
    delete wr;
    conn->close();
  });
}

}  // namespace switchyard
