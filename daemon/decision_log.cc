// DecisionLog: lines are formatted on the event loop and handed to spdlog's
// async logger, whose single worker thread writes them.
//
// spdlog 1.10 offers two overflow policies, `block` and `overrun_oldest`; the
// event loop must never block. The loop is the queue's only producer, so it
// looks at the queue before posting: when it is full, the new message is not
// posted and its lines are counted as dropped. overrun_oldest stays as the
// policy (and its counter is added in) should that check ever be bypassed.
//
// Batching (batchOn): every write(2) and every wake-up of the writer thread
// is a syscall (and, with the proxy pinned to one CPU, a context switch),
// and syscalls dominate the proxy's cost on small requests. Lines gathered
// for up to kBatchDelayMs therefore travel as one message: joined by "\n"
// (the formatter adds the last one), counted line by line.
//
// The sink is our own small class rather than spdlog's file sink because it
// must (a) reopen the file by path on SIGUSR1, in queue order, and (b) count
// the lines it wrote, so that flush() can wait for the queue to drain.
//
// Queue order for reopen: every line carries the "reopen epoch" (how many
// times reopen() had been called when the line was written) in the otherwise
// unused source_loc.line of its spdlog message. The sink reopens the file when
// it meets a line of a newer epoch. A separate marker message would not do:
// on overflow the queue may discard it like any other message.
#include "daemon/decision_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "rules/decision.h"

namespace switchyard {

namespace {

// How long flush() waits for the writer thread before giving up: long
// enough for a slow disk to take a full queue, short enough not to hold up
// a shutdown for good when the disk hangs.
constexpr std::chrono::seconds kFlushWait{5};

// Writes all of `size` bytes, retrying on EINTR and short writes.
bool writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

int openAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

// One line per message, written with write(2) straight to the descriptor:
// nothing is buffered in the process, so a crash loses no written line and
// `tail -f` sees each line at once. Runs on spdlog's worker thread, under the
// base_sink mutex.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Standard output or standard error: never closed, never reopened.
  explicit LineSink(int fd) : fd_(fd) {}
  LineSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~LineSink() override {
    if (!path_.empty() && fd_ >= 0) {
      ::close(fd_);
    }
  }

  // Lines written (or failed), for DecisionLog::flush(). A message is one
  // line, or several joined by "\n".
  uint64_t handled() const { return handled_.load(); }

  void setPaused(bool paused) {
    {
      std::lock_guard<std::mutex> lock(pause_mutex_);
      paused_ = paused;
    }
    pause_cv_.notify_all();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    {
      std::unique_lock<std::mutex> lock(pause_mutex_);
      pause_cv_.wait(lock, [this] { return !paused_; });
    }
    if (msg.source.line != epoch_) {
      epoch_ = msg.source.line;
      reopen();
    }
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    // A failed write cannot be logged to the log itself; the line is lost,
    // and it still counts as handled so that flush() does not wait for it.
    writeAll(fd_, line.data(), line.size());
    const auto& payload = msg.payload;
    handled_.fetch_add(1 + static_cast<uint64_t>(
                               std::count(payload.data(), payload.data() + payload.size(), '\n')));
  }

  // Lines are never buffered in the process.
  void flush_() override {}

 private:
  void reopen() {
    if (path_.empty()) {
      return;
    }
    int fd = openAppend(path_);
    if (fd < 0) {
      // Keep writing to the old file rather than losing lines.
      spdlog::warn("decision log: cannot reopen {}: {}", path_, std::strerror(errno));
      return;
    }
    ::close(fd_);
    fd_ = fd;
  }

  int fd_;
  std::string path_;                  // empty for stdout / stderr
  int epoch_ = 0;                     // reopen epoch of the last line written
  std::atomic<uint64_t> handled_{0};  // lines written (or failed)
  std::mutex pause_mutex_;
  std::condition_variable pause_cv_;
  bool paused_ = false;  // guarded by pause_mutex_ (tests only)
};

// One line per request: the second's part of the stamp is formatted once
// per second, not per line.
std::string nowRfc3339() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  auto secs = static_cast<time_t>(ms / 1000);
  thread_local time_t cached_secs = -1;
  thread_local std::string cached_prefix;
  if (secs != cached_secs) {
    tm utc{};
    gmtime_r(&secs, &utc);
    char buf[32];
    size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
    cached_prefix.assign(buf, n);
    cached_secs = secs;
  }
  return fmt::format("{}.{:03d}Z", cached_prefix, static_cast<int>(ms % 1000));
}

// Text fields must not be able to forge a second line or hide one: control
// characters become \xHH. Empty values print as "-". Appends to `out`: a
// line has about twenty fields, and a string per field showed up in profiles.
void appendText(std::string& out, std::string_view value) {
  if (value.empty()) {
    out += '-';
    return;
  }
  auto control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
  size_t done = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (control(c)) {
      out.append(value.substr(done, i - done));
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
      done = i + 1;
    }
  }
  out.append(value.substr(done));
}

// ` name=value`, the value escaped.
void appendField(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += '=';
  appendText(out, value);
}

template <typename Number>
void appendNumber(std::string& out, std::string_view name, Number value) {
  fmt::format_to(std::back_inserter(out), " {}={}", name, value);
}

std::string hostPort(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return v6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string formatTextAt(const DecisionRecord& r, const std::string& ts) {
  std::string target = rules::maskUrlCredentials(r.target);
  std::string out;
  out.reserve(384);
  appendText(out, ts);
  appendNumber(out, "conn", r.conn);
  appendField(out, "client", r.client);
  if (!r.user.empty()) {
    appendField(out, "user", r.user);
  }
  out += ' ';
  appendText(out, r.method);
  out += ' ';
  appendText(out, target);
  // An origin-form target ("/mod/@v/list") does not name the host; say it.
  if (!r.host.empty() && target.find(r.host) == std::string::npos) {
    appendField(out, "host", hostPort(r.host, r.port));
  }
  if (!r.module.empty()) {
    appendField(out, "module", r.module);
  }
  appendField(out, "rule", r.rule);
  if (!r.source.empty()) {
    out += " (";
    appendText(out, r.source);
    out += ')';
  }
  appendField(out, "matched", r.matched);
  appendField(out, "action", r.action);
  appendField(out, "next_hop", rules::maskUrlCredentials(r.next_hop));
  appendField(out, "resolved", r.resolved);
  appendNumber(out, "status", r.status);
  appendNumber(out, "bytes_in", r.bytes_in);
  appendNumber(out, "bytes_out", r.bytes_out);
  appendNumber(out, "duration_ms", r.duration_ms);
  appendField(out, "closed_by", r.closed_by);
  appendField(out, "cache", r.cache);
  out += " attempts=[";
  for (size_t i = 0; i < r.attempts.size(); ++i) {
    const AttemptRecord& a = r.attempts[i];
    if (i > 0) {
      out += ", ";
    }
    appendText(out, rules::maskUrlCredentials(a.url));
    out += " -> ";
    if (a.status.has_value()) {
      fmt::format_to(std::back_inserter(out), "{}", *a.status);
    } else if (a.error.has_value()) {
      out += "error \"";
      appendText(out, *a.error);
      out += '"';
    } else {
      out += '-';
    }
    out += " (";
    appendText(out, a.next);
    out += ')';
  }
  out += ']';
  if (!r.proxy_status.empty()) {
    out += " proxy_status=\"";
    appendText(out, r.proxy_status);
    out += '"';
  }
  appendNumber(out, "gen", r.config_gen);
  return out;
}

std::string formatJsonAt(const DecisionRecord& r, const std::string& ts) {
  using Json = nlohmann::ordered_json;
  Json attempts = Json::array();
  for (const AttemptRecord& a : r.attempts) {
    Json item;
    item["url"] = rules::maskUrlCredentials(a.url);
    item["status"] = a.status.has_value() ? Json(*a.status) : Json(nullptr);
    item["error"] = a.error.has_value() ? Json(*a.error) : Json(nullptr);
    item["next"] = a.next;
    attempts.push_back(std::move(item));
  }
  Json j;
  j["ts"] = ts;
  j["conn"] = r.conn;
  j["client"] = r.client;
  j["user"] = r.user;
  j["method"] = r.method;
  j["target"] = rules::maskUrlCredentials(r.target);
  j["host"] = r.host;
  j["port"] = r.port;
  j["module"] = r.module;
  j["rule"] = r.rule;
  j["source"] = r.source;
  j["matched"] = r.matched;
  j["action"] = r.action;
  j["next_hop"] = rules::maskUrlCredentials(r.next_hop);
  j["resolved"] = r.resolved;
  j["attempts"] = std::move(attempts);
  j["cache"] = r.cache;
  j["status"] = r.status;
  j["bytes_in"] = r.bytes_in;
  j["bytes_out"] = r.bytes_out;
  j["duration_ms"] = r.duration_ms;
  j["closed_by"] = r.closed_by;
  j["proxy_status"] = r.proxy_status;
  j["config_gen"] = r.config_gen;
  // Invalid UTF-8 (from a hostile request) becomes U+FFFD instead of an
  // exception: the log must always get its line.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

struct DecisionLog::Impl {
  // Destroyed in reverse order: the pool first (its destructor lets the
  // worker finish the queue and joins it), then the logger, then the sink.
  std::shared_ptr<LineSink> sink;
  std::shared_ptr<spdlog::async_logger> logger;
  std::shared_ptr<spdlog::details::thread_pool> pool;
  bool json = false;
  size_t capacity = 0;      // messages the queue holds
  uint64_t posted = 0;      // lines handed to the queue
  uint64_t not_queued = 0;  // lines dropped because the queue was full
  int epoch = 0;            // reopen() calls so far (wraps; only compared for change)
  // Batching on a loop: the lines gathered since the last hand-over.
  std::string batch;
  uint64_t batch_lines = 0;
  uv_timer_t* hand_over = nullptr;  // armed while lines are gathered
};

namespace {
// A batch is handed over early past these, so that one message stays small
// and a flood cannot hold much memory between two hand-overs.
constexpr uint64_t kMaxBatchLines = 256;
constexpr size_t kMaxBatchBytes = 256 * 1024;
// How long a gathered line may wait for the writer thread. Short enough for
// `tail -f` and for tests that wait on lines; long enough that a busy proxy
// wakes the writer (a futex, a context switch and a write(2)) once per many
// requests, and a quiet one does not wake it for every request.
constexpr uint64_t kBatchDelayMs = 20;
}  // namespace

std::unique_ptr<DecisionLog> DecisionLog::open(const rules::LogConfig& config, std::string* error) {
  return openForTest(config, kQueueSize, error);
}

std::unique_ptr<DecisionLog> DecisionLog::openForTest(const rules::LogConfig& config,
                                                      size_t queue_size, std::string* error) {
  if (config.format != "text" && config.format != "json") {
    *error = "log.format must be text or json, not \"" + config.format + "\"";
    return nullptr;
  }
  std::shared_ptr<LineSink> sink;
  if (config.decisions.empty() || config.decisions == "stderr") {
    sink = std::make_shared<LineSink>(STDERR_FILENO);
  } else if (config.decisions == "stdout") {
    sink = std::make_shared<LineSink>(STDOUT_FILENO);
  } else {
    int fd = openAppend(config.decisions);
    if (fd < 0) {
      *error = "cannot open decision log " + config.decisions + ": " + std::strerror(errno);
      return nullptr;
    }
    sink = std::make_shared<LineSink>(fd, config.decisions);
  }
  sink->set_pattern("%v");

  std::unique_ptr<DecisionLog> log(new DecisionLog());
  log->impl_ = std::make_unique<Impl>();
  Impl& impl = *log->impl_;
  impl.json = config.format == "json";
  impl.sink = sink;
  impl.capacity = std::max<size_t>(queue_size, 1);
  impl.pool = std::make_shared<spdlog::details::thread_pool>(impl.capacity, 1);
  // Not registered with spdlog's global registry: this logger belongs to
  // this object alone, and two DecisionLogs (tests, reload) never collide.
  impl.logger = std::make_shared<spdlog::async_logger>(
      "decisions", sink, impl.pool, spdlog::async_overflow_policy::overrun_oldest);
  impl.logger->set_level(spdlog::level::info);
  impl.logger->flush_on(spdlog::level::off);
  return log;
}

DecisionLog::~DecisionLog() {
  if (impl_ == nullptr) {
    return;
  }
  assert(impl_->hand_over == nullptr);
  impl_->sink->setPaused(false);
  flush();
}

void DecisionLog::write(const DecisionRecord& record) {
  const std::string ts = record.ts.empty() ? nowRfc3339() : record.ts;
  std::string line = impl_->json ? formatJsonAt(record, ts) : formatTextAt(record, ts);
  Impl& impl = *impl_;
  if (impl.hand_over == nullptr) {
    post(line, 1);
    return;
  }
  if (impl.batch_lines > 0) {
    impl.batch.push_back('\n');
  }
  impl.batch += line;
  if (++impl.batch_lines >= kMaxBatchLines || impl.batch.size() >= kMaxBatchBytes) {
    postBatch();
  } else if (impl.batch_lines == 1) {
    uv_timer_start(
        impl.hand_over,
        [](uv_timer_t* timer) { static_cast<DecisionLog*>(timer->data)->postBatch(); },
        kBatchDelayMs, 0);
  }
}

void DecisionLog::post(const std::string& text, uint64_t lines) {
  Impl& impl = *impl_;
  if (impl.pool->queue_size() >= impl.capacity) {
    impl.not_queued += lines;
    return;
  }
  impl.posted += lines;
  impl.logger->log(spdlog::source_loc{nullptr, impl.epoch, nullptr}, spdlog::level::info,
                   spdlog::string_view_t(text.data(), text.size()));
}

void DecisionLog::postBatch() {
  Impl& impl = *impl_;
  if (impl.hand_over != nullptr) {
    uv_timer_stop(impl.hand_over);
  }
  if (impl.batch_lines == 0) {
    return;
  }
  post(impl.batch, impl.batch_lines);
  impl.batch.clear();
  impl.batch_lines = 0;
}

void DecisionLog::batchOn(uv_loop_t* loop) {
  Impl& impl = *impl_;
  assert(impl.hand_over == nullptr);
  impl.hand_over = new uv_timer_t;
  uv_timer_init(loop, impl.hand_over);
  impl.hand_over->data = this;
}

void DecisionLog::stopBatching() {
  Impl& impl = *impl_;
  if (impl.hand_over == nullptr) {
    return;
  }
  postBatch();
  uv_close(reinterpret_cast<uv_handle_t*>(impl.hand_over),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  impl.hand_over = nullptr;
}

void DecisionLog::reopen() {
  // Lines gathered so far were written before the reopen: old file.
  postBatch();
  // Lines written before this call still go to the old file, lines written
  // after it to the new one (see the epoch comment at the top). With no
  // further line the old file simply stays open, unwritten.
  impl_->epoch = impl_->epoch == std::numeric_limits<int>::max() ? 0 : impl_->epoch + 1;
}

uint64_t DecisionLog::dropped() const {
  return impl_->not_queued + impl_->pool->overrun_counter();
}

void DecisionLog::flush() {
  // Every posted line is either handled by the sink or overrun in the
  // queue. The sink buffers nothing, so once all are accounted for, every
  // line is on disk.
  postBatch();
  auto deadline = std::chrono::steady_clock::now() + kFlushWait;
  while (impl_->sink->handled() + impl_->pool->overrun_counter() < impl_->posted) {
    if (std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void DecisionLog::pauseWriterForTest(bool paused) {
  impl_->sink->setPaused(paused);
}

std::string DecisionLog::formatText(const DecisionRecord& record) {
  return formatTextAt(record, record.ts);
}

std::string DecisionLog::formatJson(const DecisionRecord& record) {
  return formatJsonAt(record, record.ts);
}

}  // namespace switchyard
