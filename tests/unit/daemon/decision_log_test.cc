// DecisionLog tests: the exact line formats, credential masking, the file
// sink with reopen-after-rename, and that a flooded queue drops and counts
// lines instead of blocking.
#include "daemon/decision_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

DecisionRecord sampleRecord() {
  DecisionRecord r;
  r.ts = "2026-11-25T10:00:00.123Z";
  r.conn = 7;
  r.client = "127.0.0.1:5000";
  r.method = "CONNECT";
  r.target = "example.com:443";
  r.host = "example.com";
  r.port = 443;
  r.rule = "corp";
  r.source = "cfg.yaml:12";
  r.matched = "NO_PROXY entry \".corp\" (subdomain)";
  r.action = "direct";
  r.next_hop = "direct";
  r.resolved = "93.184.216.34:443";
  r.status = 200;
  r.bytes_in = 517;
  r.bytes_out = 3120;
  r.duration_ms = 41;
  r.closed_by = "client";
  r.config_gen = 1;
  return r;
}

DecisionRecord mirrorRecord() {
  DecisionRecord r = sampleRecord();
  r.method = "GET";
  r.target = "/golang.org/x/mod/@v/list";
  r.host = "proxy.golang.org";
  r.module = "golang.org/x/mod";
  r.user = "alice";
  r.action = "mirror";
  r.next_hop = "https://goproxy.cn";
  r.attempts = {
      {"https://goproxy.cn", 404, std::nullopt, "fell through: 404 after ','"},
      {"https://user:secret@goproxy.io", std::nullopt, "connection refused", "stopped"},
  };
  r.cache = "miss";
  r.status = 502;
  r.proxy_status = "switchyard; error=destination_unavailable";
  return r;
}

std::vector<std::string> readLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "sy_decision_log_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::unique_ptr<DecisionLog> openFile(const std::string& path, const std::string& format,
                                      size_t queue = DecisionLog::kQueueSize) {
  rules::LogConfig config;
  config.format = format;
  config.decisions = path;
  std::string error;
  auto log = DecisionLog::openForTest(config, queue, &error);
  EXPECT_NE(log, nullptr) << error;
  return log;
}

TEST(DecisionLogFormat, TextLineForTunnel) {
  EXPECT_EQ(DecisionLog::formatText(sampleRecord()),
            "2026-11-25T10:00:00.123Z conn=7 client=127.0.0.1:5000 CONNECT example.com:443 "
            "rule=corp (cfg.yaml:12) matched=NO_PROXY entry \".corp\" (subdomain) action=direct "
            "next_hop=direct resolved=93.184.216.34:443 status=200 bytes_in=517 bytes_out=3120 "
            "duration_ms=41 closed_by=client cache=none attempts=[] gen=1");
}

TEST(DecisionLogFormat, TextLineForMirrorWithAttempts) {
  EXPECT_EQ(DecisionLog::formatText(mirrorRecord()),
            "2026-11-25T10:00:00.123Z conn=7 client=127.0.0.1:5000 user=alice GET "
            "/golang.org/x/mod/@v/list host=proxy.golang.org:443 module=golang.org/x/mod "
            "rule=corp (cfg.yaml:12) matched=NO_PROXY entry \".corp\" (subdomain) action=mirror "
            "next_hop=https://goproxy.cn resolved=93.184.216.34:443 status=502 bytes_in=517 "
            "bytes_out=3120 duration_ms=41 closed_by=client cache=miss "
            "attempts=[https://goproxy.cn -> 404 (fell through: 404 after ','), "
            "https://user:***@goproxy.io -> error \"connection refused\" (stopped)] "
            "proxy_status=\"switchyard; error=destination_unavailable\" gen=1");
}

TEST(DecisionLogFormat, TextEmptyFieldsAndIpv6Host) {
  DecisionRecord r;
  r.ts = "2026-01-01T00:00:00.000Z";
  r.method = "GET";
  r.target = "/x";
  r.host = "::1";
  r.port = 8080;
  EXPECT_EQ(DecisionLog::formatText(r),
            "2026-01-01T00:00:00.000Z conn=0 client=- GET /x host=[::1]:8080 rule=- matched=- "
            "action=- next_hop=- resolved=- status=0 bytes_in=0 bytes_out=0 duration_ms=0 "
            "closed_by=- cache=none attempts=[] gen=0");
}

TEST(DecisionLogFormat, TextCannotBeSplitByControlCharacters) {
  DecisionRecord r = sampleRecord();
  r.user = "eve\nfake line";
  r.target = "example.com:443\r\n";
  r.attempts = {{"https://m.test", std::nullopt, "bad\x1b[31m", "stopped"}};
  std::string line = DecisionLog::formatText(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_NE(line.find("user=eve\\x0afake line"), std::string::npos) << line;
  EXPECT_NE(line.find("example.com:443\\x0d\\x0a"), std::string::npos) << line;
  EXPECT_NE(line.find("bad\\x1b[31m"), std::string::npos) << line;
}

TEST(DecisionLogFormat, JsonHasExactlyTheDesignKeysInOrder) {
  const std::vector<std::string> keys = {
      "ts",       "conn",      "client",      "user",      "method",       "target",
      "host",     "port",      "module",      "rule",      "source",       "matched",
      "action",   "next_hop",  "resolved",    "attempts",  "cache",        "status",
      "bytes_in", "bytes_out", "duration_ms", "closed_by", "proxy_status", "config_gen"};
  for (const DecisionRecord& r : {sampleRecord(), mirrorRecord(), DecisionRecord{}}) {
    std::string line = DecisionLog::formatJson(r);
    SCOPED_TRACE(line);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    Json j = Json::parse(line);
    ASSERT_TRUE(j.is_object());
    std::vector<std::string> got;
    for (const auto& item : j.items()) {
      got.push_back(item.key());
    }
    EXPECT_EQ(got, keys);
    for (const char* k :
         {"ts", "client", "user", "method", "target", "host", "module", "rule", "source", "matched",
          "action", "next_hop", "resolved", "cache", "closed_by", "proxy_status"}) {
      EXPECT_TRUE(j[k].is_string()) << k;
    }
    for (const char* k : {"conn", "port", "bytes_in", "bytes_out", "duration_ms", "config_gen"}) {
      EXPECT_TRUE(j[k].is_number_unsigned()) << k;
    }
    EXPECT_TRUE(j["status"].is_number_integer());
    EXPECT_TRUE(j["attempts"].is_array());
  }
}

TEST(DecisionLogFormat, JsonValues) {
  Json j = Json::parse(DecisionLog::formatJson(mirrorRecord()));
  EXPECT_EQ(j["ts"], "2026-11-25T10:00:00.123Z");
  EXPECT_EQ(j["conn"], 7);
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["port"], 443);
  EXPECT_EQ(j["module"], "golang.org/x/mod");
  EXPECT_EQ(j["status"], 502);
  EXPECT_EQ(j["cache"], "miss");
  EXPECT_EQ(j["config_gen"], 1);
  EXPECT_EQ(j["proxy_status"], "switchyard; error=destination_unavailable");
  ASSERT_EQ(j["attempts"].size(), 2u);
  const Json& a0 = j["attempts"][0];
  EXPECT_EQ(a0.dump(), R"({"url":"https://goproxy.cn","status":404,"error":null,)"
                       R"("next":"fell through: 404 after ','"})");
  const Json& a1 = j["attempts"][1];
  EXPECT_EQ(a1.dump(), R"({"url":"https://user:***@goproxy.io","status":null,)"
                       R"("error":"connection refused","next":"stopped"})");
}

TEST(DecisionLogFormat, JsonSurvivesInvalidUtf8) {
  DecisionRecord r = sampleRecord();
  r.target = "bad\xff\xfe.example:443";
  std::string line = DecisionLog::formatJson(r);
  Json j = Json::parse(line);
  EXPECT_EQ(j["target"], "bad\xEF\xBF\xBD\xEF\xBF\xBD.example:443");
}

TEST(DecisionLogFormat, CredentialsAreMaskedEverywhere) {
  struct Case {
    std::string target;
    std::string masked;
  };
  const Case cases[] = {
      {"http://user:secret@example.com/x", "http://user:***@example.com/x"},
      {"https://a:secret@h.test:8443/p?q=1", "https://a:***@h.test:8443/p?q=1"},
      {"http://example.com/x", "http://example.com/x"},
      {"example.com:443", "example.com:443"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    DecisionRecord r = sampleRecord();
    r.target = c.target;
    r.next_hop = "http://proxyuser:secret@parent.corp:8080";
    r.attempts = {{"https://u:secret@mirror.test", 200, std::nullopt, "served"}};
    std::string text = DecisionLog::formatText(r);
    std::string json = DecisionLog::formatJson(r);
    EXPECT_EQ(text.find("secret"), std::string::npos) << text;
    EXPECT_EQ(json.find("secret"), std::string::npos) << json;
    EXPECT_NE(text.find(" " + c.masked + " "), std::string::npos) << text;
    Json j = Json::parse(json);
    EXPECT_EQ(j["target"], c.masked);
    EXPECT_EQ(j["next_hop"], "http://proxyuser:***@parent.corp:8080");
    EXPECT_EQ(j["attempts"][0]["url"], "https://u:***@mirror.test");
  }
}

TEST(DecisionLogOpen, RejectsBadConfig) {
  TempDir dir;
  struct Case {
    std::string format;
    std::string decisions;
    std::string error_part;
  };
  const Case cases[] = {
      {"text", dir.file("missing/dir/decisions.log"), "missing/dir/decisions.log"},
      {"json", "/proc/nonexistent/x.log", "/proc/nonexistent/x.log"},
      {"yaml", "stderr", "yaml"},
      {"", "stderr", "text or json"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.format + " " + c.decisions);
    rules::LogConfig config;
    config.format = c.format;
    config.decisions = c.decisions;
    std::string error;
    EXPECT_EQ(DecisionLog::open(config, &error), nullptr);
    EXPECT_NE(error.find(c.error_part), std::string::npos) << error;
  }
}

TEST(DecisionLogOpen, StandardStreams) {
  for (const char* where : {"stderr", "stdout", ""}) {
    rules::LogConfig config;
    config.decisions = where;
    std::string error;
    auto log = DecisionLog::open(config, &error);
    EXPECT_NE(log, nullptr) << error;
    if (log) {
      log->flush();
      EXPECT_EQ(log->dropped(), 0u);
    }
  }
}

TEST(DecisionLogFile, WritesOneLinePerRecord) {
  TempDir dir;
  for (const std::string format : {"text", "json"}) {
    SCOPED_TRACE(format);
    const std::string path = dir.file(format + ".log");
    auto log = openFile(path, format);
    ASSERT_NE(log, nullptr);
    DecisionRecord r = sampleRecord();
    log->write(r);
    r.conn = 8;
    r.ts.clear();  // write() fills it in
    log->write(r);
    log->flush();
    std::vector<std::string> lines = readLines(path);
    ASSERT_EQ(lines.size(), 2u);
    const std::regex ts_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    if (format == "text") {
      EXPECT_EQ(lines[0], DecisionLog::formatText(sampleRecord()));
      EXPECT_TRUE(std::regex_match(lines[1].substr(0, 24), ts_re)) << lines[1];
      EXPECT_NE(lines[1].find(" conn=8 "), std::string::npos);
      // The stamp is now, not a cached second from an earlier line.
      tm stamped{};
      ASSERT_NE(strptime(lines[1].substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &stamped), nullptr);
      EXPECT_LE(std::abs(timegm(&stamped) - ::time(nullptr)), 2) << lines[1];
    } else {
      EXPECT_EQ(lines[0], DecisionLog::formatJson(sampleRecord()));
      Json j = Json::parse(lines[1]);
      EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(), ts_re)) << lines[1];
      EXPECT_EQ(j["conn"], 8);
    }
    EXPECT_EQ(log->dropped(), 0u);
  }
}

TEST(DecisionLogFile, AppendsToExistingFile) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  std::ofstream(path) << "earlier line\n";
  auto log = openFile(path, "text");
  ASSERT_NE(log, nullptr);
  log->write(sampleRecord());
  log.reset();  // the destructor flushes
  std::vector<std::string> lines = readLines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "earlier line");
  EXPECT_EQ(lines[1], DecisionLog::formatText(sampleRecord()));
}

TEST(DecisionLogFile, ReopenAfterRenameWritesToNewFile) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  const std::string rotated = dir.file("d.log.1");
  auto log = openFile(path, "text");
  ASSERT_NE(log, nullptr);
  DecisionRecord a = sampleRecord();
  a.conn = 1;
  DecisionRecord b = sampleRecord();
  b.conn = 2;

  log->write(a);
  log->flush();
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);
  log->reopen();
  log->write(b);
  log->flush();
  EXPECT_EQ(readLines(rotated), std::vector<std::string>{DecisionLog::formatText(a)});
  EXPECT_EQ(readLines(path), std::vector<std::string>{DecisionLog::formatText(b)});
}

TEST(DecisionLogFile, ReopenKeepsQueueOrder) {
  // Lines queued before reopen() belong to the old file even when the writer
  // only gets to them after the rename.
  TempDir dir;
  const std::string path = dir.file("d.log");
  const std::string rotated = dir.file("d.log.1");
  auto log = openFile(path, "json");
  ASSERT_NE(log, nullptr);
  log->pauseWriterForTest(true);
  std::vector<std::string> before;
  std::vector<std::string> after;
  for (uint64_t i = 0; i < 5; ++i) {
    DecisionRecord r = sampleRecord();
    r.conn = i;
    log->write(r);
    before.push_back(DecisionLog::formatJson(r));
  }
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);
  log->reopen();
  for (uint64_t i = 5; i < 8; ++i) {
    DecisionRecord r = sampleRecord();
    r.conn = i;
    log->write(r);
    after.push_back(DecisionLog::formatJson(r));
  }
  log->pauseWriterForTest(false);
  log->flush();
  EXPECT_EQ(readLines(rotated), before);
  EXPECT_EQ(readLines(path), after);
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(DecisionLogFile, ReopenFailureKeepsOldFile) {
  TempDir dir;
  const std::string sub = dir.file("sub");
  std::filesystem::create_directory(sub);
  const std::string path = sub + "/d.log";
  const std::string moved = dir.file("moved.log");
  auto log = openFile(path, "text");
  ASSERT_NE(log, nullptr);
  ASSERT_EQ(std::rename(path.c_str(), moved.c_str()), 0);
  std::filesystem::remove(sub);  // the path cannot be created again
  log->reopen();
  log->write(sampleRecord());
  log->flush();
  EXPECT_EQ(readLines(moved), std::vector<std::string>{DecisionLog::formatText(sampleRecord())});
}

TEST(DecisionLogQueue, FloodDropsAndCountsWithoutBlocking) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  constexpr size_t kQueue = 4;
  constexpr uint64_t kLines = 1000;
  auto log = openFile(path, "text", kQueue);
  ASSERT_NE(log, nullptr);
  log->pauseWriterForTest(true);
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < kLines; ++i) {
    DecisionRecord r = sampleRecord();
    r.conn = i;
    log->write(r);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // A blocking queue would never get here while the writer is paused; this
  // bound only guards against a slow path sneaking in.
  EXPECT_LT(elapsed, 2s);
  // At most the queue plus the one line the paused writer holds survive.
  EXPECT_GE(log->dropped(), kLines - kQueue - 1);
  log->pauseWriterForTest(false);
  log->flush();
  std::vector<std::string> lines = readLines(path);
  EXPECT_EQ(lines.size() + log->dropped(), kLines);
  // Lines that found the queue full were dropped; the others are written
  // in the order they came, starting with the first.
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.front().find(" conn=0 "), std::string::npos) << lines.front();
  std::vector<uint64_t> conns;
  for (const std::string& line : lines) {
    size_t at = line.find(" conn=");
    ASSERT_NE(at, std::string::npos);
    conns.push_back(std::stoull(line.substr(at + 6)));
  }
  EXPECT_TRUE(std::is_sorted(conns.begin(), conns.end()));
}

// Lines gathered on a loop travel as one message, within the batch delay,
// and each still counts as a line: in the file, for flush(), and when dropped.
TEST(DecisionLogBatch, GatheredLinesArriveTogetherWithinTheDelay) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  auto log = openFile(path, "json");
  ASSERT_NE(log, nullptr);
  uv_loop_t loop;
  uv_loop_init(&loop);
  log->batchOn(&loop);
  for (uint64_t i = 0; i < 3; ++i) {
    DecisionRecord r = sampleRecord();
    r.conn = i;
    log->write(r);
  }
  EXPECT_TRUE(readLines(path).empty());  // gathered, not yet handed over
  auto start = std::chrono::steady_clock::now();
  // Nothing else is open: the loop runs exactly until the hand-over timer.
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (readLines(path).size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  std::vector<std::string> lines = readLines(path);
  ASSERT_EQ(lines.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(Json::parse(lines[i])["conn"], i);
  }
  // What is gathered when batching stops is handed over, not lost.
  log->pauseWriterForTest(true);
  for (int i = 0; i < 3; ++i) {
    log->write(sampleRecord());
  }
  log->stopBatching();
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  log->pauseWriterForTest(false);
  log->flush();
  EXPECT_EQ(readLines(path).size(), 6u);
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(DecisionLogBatch, FullQueueDropsWholeBatchesAndCountsTheirLines) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  auto log = openFile(path, "text", /*queue=*/2);
  ASSERT_NE(log, nullptr);
  uv_loop_t loop;
  uv_loop_init(&loop);
  log->batchOn(&loop);
  log->pauseWriterForTest(true);
  // Five batches of four lines: the paused writer holds at most one, the
  // queue two; the rest find the queue full.
  for (int batch = 0; batch < 5; ++batch) {
    for (int i = 0; i < 4; ++i) {
      log->write(sampleRecord());
    }
    uv_run(&loop, UV_RUN_DEFAULT);  // until the hand-over timer fired
  }
  log->stopBatching();
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  log->pauseWriterForTest(false);
  log->flush();
  size_t written = readLines(path).size();
  EXPECT_EQ(written % 4, 0u);
  EXPECT_GE(written, 8u);
  EXPECT_EQ(written + log->dropped(), 20u);
}

TEST(DecisionLogQueue, NoDropsUnderNormalLoad) {
  TempDir dir;
  const std::string path = dir.file("d.log");
  auto log = openFile(path, "json");
  ASSERT_NE(log, nullptr);
  for (uint64_t i = 0; i < 500; ++i) {
    DecisionRecord r = sampleRecord();
    r.conn = i;
    log->write(r);
  }
  log->flush();
  EXPECT_EQ(log->dropped(), 0u);
  std::vector<std::string> lines = readLines(path);
  ASSERT_EQ(lines.size(), 500u);
  for (uint64_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(Json::parse(lines[i])["conn"], i);
  }
}

}  // namespace
}  // namespace switchyard
