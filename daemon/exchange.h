// Exchange: what a Connection needs from whatever carries its current
// request (a ForwardExchange to an origin or parent, a MirrorExchange along
// a mirror list). The Connection only ever talks to this interface, so a new
// way of answering a request does not touch its state machine.
#pragma once

#include <cstddef>
#include <string>

namespace switchyard {

class Exchange {
 public:
  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // ---- From the Connection.
  // A piece of the client's request body.
  virtual void onRequestBody(const char* at, size_t len) = 0;
  // The client's request ended.
  virtual void onRequestComplete() = 0;
  // The client's body was malformed midway: answer 400 (or abort) and log.
  virtual void onRequestBodyError(const std::string& why) = 0;
  // A client write completed: backpressure may be released.
  virtual void onClientWritten() = 0;
  // The connection is going away (client closed, drain deadline): stop,
  // log once and free. `closed_by` is "client" or "proxy".
  virtual void detach(const char* closed_by) = 0;

 protected:
  // Exchanges free themselves once their handles are closed.
  virtual ~Exchange() = default;
};

}  // namespace switchyard
