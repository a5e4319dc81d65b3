// writeNowOrQueue over a real socketpair: what the kernel takes at once is
// not a write request (no completion), what it does not take is queued from
// the exact byte where the kernel stopped, and order is kept.
#include "daemon/write_now.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace switchyard {
namespace {

struct Completions {
  std::vector<std::pair<int, size_t>> seen;  // status, bytes
  void onWritten(int status, size_t bytes) { seen.emplace_back(status, bytes); }
};

class WriteNowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop_);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    peer_ = fds[1];
    int small = 4096;  // a small send buffer, so that a big write is partial
    ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    uv_pipe_init(&loop_, &pipe_, 0);
    ASSERT_EQ(uv_pipe_open(&pipe_, fds[0]), 0);
  }
  void TearDown() override {
    if (peer_ >= 0) {
      ::close(peer_);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }
  // Reads what the peer has, running the loop until `want` bytes arrived.
  std::string drainPeer(size_t want) {
    std::string got;
    char buf[65536];
    while (got.size() < want) {
      ssize_t n = ::read(peer_, buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
      } else {
        uv_run(&loop_, UV_RUN_NOWAIT);
      }
    }
    return got;
  }

  uv_loop_t loop_;
  uv_pipe_t pipe_;
  int peer_ = -1;
  Completions done_;
};

TEST_F(WriteNowTest, SmallWriteGoesOutNowWithoutCompletion) {
  WriteOutcome outcome =
      writeNowOrQueue<&Completions::onWritten, Completions>(stream(), &done_, makeWrite("hello"));
  EXPECT_EQ(outcome, WriteOutcome::kWrittenNow);
  EXPECT_EQ(drainPeer(5), "hello");
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_TRUE(done_.seen.empty());
}

// Head, block and tail, far more than the socket buffer: the queued rest
// starts exactly where the kernel stopped, whichever buffer that was in.
TEST_F(WriteNowTest, BigWriteQueuesTheRestInOrder) {
  for (size_t head_len : {0u, 10u, 70000u}) {
    SCOPED_TRACE(head_len);
    done_.seen.clear();
    std::string head(head_len, 'h');
    for (size_t i = 0; i < head.size(); ++i) {
      head[i] = static_cast<char>('a' + i % 26);
    }
    BufferRef block = BufferRef::make();
    for (size_t i = 0; i < BufferPool::kBlockSize; ++i) {
      block.data()[i] = static_cast<char>('A' + i % 26);
    }
    std::string middle(block.data(), BufferPool::kBlockSize);
    std::string tail(3000, 't');
    std::string expected = head + middle + tail;
    WriteOutcome outcome = writeNowOrQueue<&Completions::onWritten, Completions>(
        stream(), &done_, makeWrite(head, block, block.data(), BufferPool::kBlockSize, tail));
    EXPECT_EQ(outcome, WriteOutcome::kQueued);
    // A second write while the first is queued never overtakes it.
    WriteOutcome second =
        writeNowOrQueue<&Completions::onWritten, Completions>(stream(), &done_, makeWrite("!end"));
    EXPECT_EQ(second, WriteOutcome::kQueued);
    std::string got = drainPeer(expected.size() + 4);
    EXPECT_TRUE(got == expected + "!end");
    while (done_.seen.size() < 2) {
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    using Seen = std::pair<int, size_t>;
    // The completion counts the bytes that had to be queued.
    EXPECT_EQ(done_.seen[0].first, 0);
    EXPECT_GT(done_.seen[0].second, 0u);
    EXPECT_LE(done_.seen[0].second, expected.size());
    EXPECT_EQ(done_.seen[1], Seen(0, 4));
  }
}

// A socket whose peer is gone: never "written now". Either the write is
// refused at once, or it is queued and its completion reports the error.
TEST_F(WriteNowTest, BrokenSocketNeverCountsAsWritten) {
  ::close(peer_);
  peer_ = -1;
  WriteOutcome outcome =
      writeNowOrQueue<&Completions::onWritten, Completions>(stream(), &done_, makeWrite("lost"));
  ASSERT_NE(outcome, WriteOutcome::kWrittenNow);
  if (outcome == WriteOutcome::kQueued) {
    while (done_.seen.empty()) {
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    EXPECT_LT(done_.seen[0].first, 0);
  }
}

}  // namespace
}  // namespace switchyard
