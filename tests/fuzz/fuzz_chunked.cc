// Fuzzes the chunked decoder of ResponseReader (llhttp in HTTP_RESPONSE mode
// behind our hooks): what an origin or parent proxy sends after a
// "Transfer-Encoding: chunked" head.
//
// Input: a flags byte, two bytes choosing where the input is cut, then the
// chunked body (size lines, data, extensions, trailers: whatever the fuzzer
// makes). The reader is fed the head plus the body whole, and again in three
// pieces; optionally the stream then ends (finish()). Checked for every input:
//  - no crash, no sanitizer report;
//  - the body delivered is never longer than the bytes after the head, and
//    a complete response is reported exactly once, and only with kPaused;
//  - the cut does not matter: the same body, completion, error or not, and
//    end offset whichever way the bytes arrive;
//  - when the reader says the message is complete, an independent decoder of
//    RFC 9112 7.1 agrees on the body and on where the message ends. (The
//    end decides whether the upstream connection may be reused: a
//    disagreement there is a response-splitting bug.)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/upstream_http.h"

namespace {

using switchyard::ResponseHead;
using switchyard::ResponseReader;

constexpr std::string_view kHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
// Far above the head: trailers are not counted against it.
constexpr size_t kMaxHeadBytes = 4096;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

class Recorder : public ResponseReader::Listener {
 public:
  ResponseReader::HeadAction onResponseHead(const ResponseHead&) override {
    ++heads;
    return ResponseReader::HeadAction::kBody;
  }
  void onResponseBody(const char* at, size_t len) override { body.append(at, len); }
  void onResponseComplete() override { ++completes; }

  int heads = 0;
  int completes = 0;
  std::string body;
};

// What one way of feeding the stream produced.
struct Run {
  bool complete = false;
  bool error = false;
  size_t end = 0;  // offset in the stream just after the message, when complete
  std::string body;
};

Run feedInPieces(std::string_view stream, size_t cut1, size_t cut2, bool eof) {
  Recorder recorder;
  ResponseReader reader(&recorder, kMaxHeadBytes);
  Run run;
  size_t cuts[] = {cut1, cut2, stream.size()};
  size_t start = 0;
  for (size_t cut : cuts) {
    if (cut < start) {
      continue;
    }
    ResponseReader::Result r = reader.feed(stream.data() + start, cut - start);
    check(r.consumed <= cut - start, "consumed more than fed");
    if (r.kind == ResponseReader::Result::Kind::kError) {
      run.error = true;
      break;
    }
    if (r.kind == ResponseReader::Result::Kind::kPaused) {
      check(recorder.completes == 1, "paused without a complete response");
      run.complete = true;
      run.end = start + r.consumed;
      break;
    }
    check(r.consumed == cut - start, "need-more without consuming everything");
    start = cut;
  }
  if (!run.complete && !run.error && eof) {
    ResponseReader::Result r = reader.finish();
    // A chunked body never ends with the connection: EOF is an error, unless
    // nothing at all had arrived (it always has here: the head).
    check(r.kind == ResponseReader::Result::Kind::kError, "EOF completed a chunked body");
    run.error = true;
  }
  check(recorder.heads == 1 || run.error, "no head for a well-formed head");
  check(recorder.completes <= 1, "completed twice");
  check(recorder.completes == 0 || run.complete, "completed but not paused");
  check(recorder.body.size() + kHead.size() <= stream.size(), "more body than input");
  run.body = std::move(recorder.body);
  return run;
}

// ---- An independent decoder of RFC 9112 7.1, strict except for the
// leniencies of the linked llhttp that are known and documented
// (docs/SECURITY.md, "Strict parsing"), so that the fuzzer looks for others:
//  - a bare LF may end the trailer section (every llhttp 8 build);
//  - built without LLHTTP_STRICT_MODE, llhttp 8.1 takes CR plus *any* byte
//    as the CRLF that ends a chunk-size line, the trailer section and a
//    trailer field line with an empty value, and *any two bytes* as the CRLF
//    after chunk data; and it allows SP in field names, so a trailer line may
//    start with one. Whether the linked parser does is found out once, at
//    start ("loose").

// True if the reader completes a body whose chunk data ends in "XY".
bool parserIsLoose() {
  Recorder recorder;
  ResponseReader reader(&recorder, kMaxHeadBytes);
  std::string probe(kHead);
  probe += "1\r\naXY0\r\n\r\n";
  return reader.feed(probe.data(), probe.size()).kind == ResponseReader::Result::Kind::kPaused;
}

const bool kLooseParser = parserIsLoose();

int hexValue(unsigned char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

enum class Ref { kComplete, kNeedMore, kError };

struct RefResult {
  Ref kind = Ref::kNeedMore;
  size_t end = 0;
  std::string body;
};

// Reads `[ ";" chunk-ext ] CRLF` from `pos`; returns false on malformed
// input, sets *pos past the line end, or *more when the input ends first.
// The extensions themselves are not checked (llhttp is the stricter one
// there, and they carry nothing we keep): only where the line ends matters,
// and no extension may contain CR or LF.
bool readExtensions(std::string_view in, size_t* pos, bool* more) {
  size_t p = *pos;
  if (p < in.size() && in[p] == ';') {
    p = in.find_first_of("\r\n", p);
    if (p == std::string_view::npos) {
      *more = true;
      return true;
    }
  }
  if (p + 1 >= in.size()) {
    *more = true;
    return true;
  }
  if (in[p] != '\r' || (in[p + 1] != '\n' && !kLooseParser)) {
    return false;
  }
  *pos = p + 2;
  return true;
}

RefResult referenceDecode(std::string_view in) {
  RefResult out;
  size_t p = 0;
  for (;;) {
    uint64_t size = 0;
    size_t digits = 0;
    while (p < in.size() && hexValue(static_cast<unsigned char>(in[p])) >= 0) {
      if (size > (UINT64_MAX >> 4)) {
        out.kind = Ref::kError;  // RFC 9112 7.1: anticipate overflow
        return out;
      }
      size = (size << 4) | static_cast<uint64_t>(hexValue(static_cast<unsigned char>(in[p])));
      ++p;
      ++digits;
    }
    if (p >= in.size()) {
      return out;  // need more
    }
    if (digits == 0) {
      out.kind = Ref::kError;
      return out;
    }
    bool more = false;
    if (!readExtensions(in, &p, &more)) {
      out.kind = Ref::kError;
      return out;
    }
    if (more) {
      return out;
    }
    if (size == 0) {
      break;
    }
    if (in.size() - p < size) {
      return out;
    }
    out.body.append(in.substr(p, size));
    p += size;
    if (p + 1 >= in.size()) {
      return out;
    }
    if ((in[p] != '\r' || in[p + 1] != '\n') && !kLooseParser) {
      out.kind = Ref::kError;
      return out;
    }
    p += 2;
  }
  // Trailer section: field lines up to an empty line. Only where it ends
  // matters here; the fields themselves are dropped by the reader. A line
  // starting with SP or HTAB continues the previous field (obs-fold, which
  // RFC 9112 5.2 lets a recipient read as SP).
  bool have_field = false;
  for (;;) {
    if (p >= in.size()) {
      return out;
    }
    if (in[p] == '\n') {  // llhttp takes a bare LF as the empty line
      out.kind = Ref::kComplete;
      out.end = p + 1;
      return out;
    }
    if (in[p] == '\r') {
      if (p + 1 >= in.size()) {
        return out;
      }
      if (in[p + 1] != '\n' && !kLooseParser) {
        out.kind = Ref::kError;
        return out;
      }
      out.kind = Ref::kComplete;
      out.end = p + 2;
      return out;
    }
    bool continuation = in[p] == ' ' || in[p] == '\t';
    if (continuation && !have_field) {
      if (!kLooseParser) {
        out.kind = Ref::kError;
        return out;
      }
      continuation = false;  // loose llhttp: SP is a name character
    }
    size_t eol = in.find_first_of("\r\n", p);
    if (eol == std::string_view::npos || eol + 1 >= in.size()) {
      return out;
    }
    std::string_view value = in.substr(p, eol - p);
    if (!continuation) {
      size_t colon = value.find(':');
      if (colon == std::string_view::npos) {
        out.kind = Ref::kError;
        return out;
      }
      value.remove_prefix(colon + 1);
    }
    if (in[eol] == '\n') {
      out.kind = Ref::kError;
      return out;
    }
    bool empty_value = value.find_first_not_of(" \t") == std::string_view::npos;
    if (in[eol + 1] != '\n' && !(kLooseParser && empty_value)) {
      out.kind = Ref::kError;
      return out;
    }
    have_field = true;
    p = eol + 2;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3 || size > 8192) {
    return 0;
  }
  const uint8_t flags = data[0];
  const size_t cut_seed = static_cast<size_t>(data[1]) | (static_cast<size_t>(data[2]) << 8);
  std::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::string stream(kHead);
  stream.append(body);
  const bool eof = (flags & 1) != 0;

  Run whole = feedInPieces(stream, stream.size(), stream.size(), eof);
  size_t cut1 = cut_seed % (stream.size() + 1);
  size_t cut2 = cut1 + (cut_seed / 7) % (stream.size() - cut1 + 1);
  Run pieces = feedInPieces(stream, cut1, cut2, eof);
  check(whole.complete == pieces.complete, "the cut changed completion");
  check(whole.error == pieces.error, "the cut changed the error");
  check(whole.end == pieces.end, "the cut changed where the message ends");
  check(whole.body == pieces.body, "the cut changed the body");

  if (whole.complete) {
    RefResult ref = referenceDecode(body);
    if (ref.kind != Ref::kComplete) {
      std::fprintf(stderr, "reader completed a body the reference decoder %s\n",
                   ref.kind == Ref::kError ? "rejects" : "finds incomplete");
      std::abort();
    }
    check(ref.body == whole.body, "body differs from the reference decoder");
    check(ref.end + kHead.size() == whole.end, "end differs from the reference decoder");
  }
  return 0;
}
