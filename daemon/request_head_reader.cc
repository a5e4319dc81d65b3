// RequestHeadReader: see request_head_reader.h.
#include "daemon/request_head_reader.h"

namespace switchyard {

RequestHeadReader::RequestHeadReader(size_t max_head_bytes) : max_head_bytes_(max_head_bytes) {
  reset();
}

const llhttp_settings_t* RequestHeadReader::settings() {
  static const llhttp_settings_t table = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &RequestHeadReader::onMessageBegin;
    s.on_url = &RequestHeadReader::onUrl;
    s.on_header_field = &RequestHeadReader::onHeaderField;
    s.on_header_value = &RequestHeadReader::onHeaderValue;
    s.on_header_value_complete = &RequestHeadReader::onHeaderValueComplete;
    s.on_headers_complete = &RequestHeadReader::onHeadersComplete;
    return s;
  }();
  return &table;
}

RequestHeadReader* RequestHeadReader::from(llhttp_t* parser) {
  return static_cast<RequestHeadReader*>(parser->data);
}

void RequestHeadReader::reset() {
  // A fresh parser per head: the owner refuses any request with a body, so
  // no message ever continues past its head.
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
  head_bytes_ = 0;
  head_ = RequestHead();
  field_.clear();
  value_.clear();
  started_ = false;
  too_many_fields_ = false;
  keep_alive_ = false;
}

RequestHeadReader::Result RequestHeadReader::feed(const char* data, size_t len) {
  Result result;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  size_t used = len;
  if (err == HPE_PAUSED) {
    used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
  }
  head_bytes_ += used;
  if (head_bytes_ > max_head_bytes_ || too_many_fields_) {
    result.kind = Result::Kind::kError;
    result.status = 431;
    result.error = too_many_fields_ ? "more than " + std::to_string(kMaxFields) + " header fields"
                                    : "the request head exceeds limits.max_header_bytes (" +
                                          std::to_string(max_head_bytes_) + " bytes)";
    return result;
  }
  switch (err) {
    case HPE_OK:
      result.consumed = len;
      return result;
    case HPE_PAUSED:
      result.kind = Result::Kind::kHead;
      result.consumed = used;
      return result;
    default:
      result.kind = Result::Kind::kError;
      result.error = std::string("malformed request: ") + llhttp_errno_name(err) + " (" +
                     llhttp_get_error_reason(&parser_) + ")";
      return result;
  }
}

int RequestHeadReader::onMessageBegin(llhttp_t* parser) {
  from(parser)->started_ = true;
  return 0;
}

int RequestHeadReader::onUrl(llhttp_t* parser, const char* at, size_t len) {
  from(parser)->head_.target.append(at, len);
  return 0;
}

int RequestHeadReader::onHeaderField(llhttp_t* parser, const char* at, size_t len) {
  from(parser)->field_.append(at, len);
  return 0;
}

int RequestHeadReader::onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
  from(parser)->value_.append(at, len);
  return 0;
}

int RequestHeadReader::onHeaderValueComplete(llhttp_t* parser) {
  RequestHeadReader* self = from(parser);
  if (self->head_.headers.size() >= kMaxFields) {
    self->too_many_fields_ = true;
    return HPE_USER;
  }
  // A field name is a token (RFC 9112 5.1), whatever llhttp lets through.
  if (!isToken(self->field_)) {
    return HPE_USER;
  }
  self->head_.headers.add(std::move(self->field_), std::move(self->value_));
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int RequestHeadReader::onHeadersComplete(llhttp_t* parser) {
  RequestHeadReader* self = from(parser);
  self->head_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  self->head_.http_major = parser->http_major;
  self->head_.http_minor = parser->http_minor;
  self->keep_alive_ = llhttp_should_keep_alive(parser) != 0;
  return HPE_PAUSED;
}

}  // namespace switchyard
