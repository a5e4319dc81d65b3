// RequestHeadReader: request heads from a byte stream, with llhttp (strict,
// HTTP_REQUEST). For sessions that carry only bodyless requests — the inner
// requests of an intercepted tunnel — so it stops at each head and leaves the
// bytes after it to the owner; a head with a body is the owner's to refuse.
//
// The head size counts every byte fed until the head is complete, so the
// limit does not depend on how the head was split across reads.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>

#include "daemon/http_message.h"

namespace switchyard {

class RequestHeadReader {
 public:
  static constexpr size_t kMaxFields = 256;

  struct Result {
    enum class Kind {
      kNeedMore,  // all input consumed, the head is not complete
      kHead,      // a complete head: head(), keepAlive(); `consumed` bytes were its
      kError,     // malformed or too large: answer `status` and close
    };
    Kind kind = Kind::kNeedMore;
    size_t consumed = 0;
    int status = 400;  // for kError: 400, or 431 for a head over the limits
    std::string error;
  };

  explicit RequestHeadReader(size_t max_head_bytes);
  RequestHeadReader(const RequestHeadReader&) = delete;
  RequestHeadReader& operator=(const RequestHeadReader&) = delete;

  Result feed(const char* data, size_t len);
  // Forgets the head; ready for the next one.
  void reset();

  const RequestHead& head() const { return head_; }
  RequestHead takeHead() { return std::move(head_); }
  // A byte of a head arrived since the last reset (leading CRLFs aside).
  bool started() const { return started_; }
  // llhttp's reading of Connection and the version: may another request follow?
  bool keepAlive() const { return keep_alive_; }
  // Bytes of the current head fed so far (all of it after kHead).
  size_t headBytes() const { return head_bytes_; }

 private:
  static const llhttp_settings_t* settings();
  static RequestHeadReader* from(llhttp_t* parser);
  static int onMessageBegin(llhttp_t* parser);
  static int onUrl(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);

  llhttp_t parser_;
  size_t max_head_bytes_;
  size_t head_bytes_ = 0;
  RequestHead head_;
  std::string field_;
  std::string value_;
  bool started_ = false;
  bool too_many_fields_ = false;
  bool keep_alive_ = false;
};

}  // namespace switchyard
