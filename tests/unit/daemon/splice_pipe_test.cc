// SplicePipe on real loopback TCP sockets: bytes arrive whole and in order,
// an end and an empty socket are told apart, what a full destination does
// not take comes out of the pipe in order, and a destination that reset
// leaves the pipe empty for the next transfer.
#include "daemon/splice_pipe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

namespace switchyard {
namespace {

using Clock = std::chrono::steady_clock;

// A connected loopback pair: `near` is the proxy's socket (non-blocking),
// `far` the peer's (blocking).
struct TcpPair {
  int near = -1;
  int far = -1;
  TcpPair() {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener, 1), 0);
    EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    far = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(far, reinterpret_cast<sockaddr*>(&addr), len), 0);
    near = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    EXPECT_GE(near, 0);
    ::close(listener);
  }
  ~TcpPair() {
    ::close(near);
    ::close(far);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;
};

std::string randomBytes(size_t n) {
  std::mt19937 gen(static_cast<unsigned>(n));
  std::string out(n, '\0');
  for (char& c : out) {
    c = static_cast<char>(gen());
  }
  return out;
}

void sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << strerror(errno);
    off += static_cast<size_t>(n);
  }
}

// Reads exactly n bytes from a blocking socket (or fewer at its end).
std::string recvExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t off = 0;
  while (off < n) {
    ssize_t got = ::recv(fd, out.data() + off, n - off, 0);
    if (got <= 0) {
      break;
    }
    off += static_cast<size_t>(got);
  }
  out.resize(off);
  return out;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1;
}

// Moves `from` -> `to` until `total` bytes were taken; fails on anything
// else than a full transfer with nothing left over.
void moveAll(SplicePipe* pipe, int from, int to, size_t total) {
  size_t taken = 0;
  while (taken < total) {
    ASSERT_TRUE(readable(from));
    SplicePipe::Transfer t = pipe->move(from, to);
    ASSERT_GT(t.taken, 0);
    ASSERT_EQ(t.left, 0u);
    ASSERT_EQ(t.to_error, 0);
    taken += static_cast<size_t>(t.taken);
  }
  EXPECT_EQ(taken, total);
}

class SplicePipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // As in the daemon (cli_run.cc): a write to a reset socket is EPIPE,
    // not a signal.
    ::signal(SIGPIPE, SIG_IGN);
    SplicePipe::enableAgain();
    pipe_ = SplicePipe::get();
    ASSERT_NE(pipe_, nullptr);
  }
  // The pipe is empty: a transfer between new sockets carries only their
  // own bytes.
  void expectNextTransferCarriesOnly(const std::string& text) {
    TcpPair in;
    TcpPair out;
    sendAll(in.far, text);
    moveAll(pipe_, in.near, out.near, text.size());
    EXPECT_EQ(recvExactly(out.far, text.size()), text);
  }

  SplicePipe* pipe_ = nullptr;
};

TEST_F(SplicePipeTest, BytesArriveWholeAndInOrder) {
  for (size_t size : {size_t{1}, size_t{1000}, size_t{65536}, size_t{3 << 20}}) {
    SCOPED_TRACE(size);
    TcpPair in;
    TcpPair out;
    std::string data = randomBytes(size);
    std::string got;
    // The sender and the receiver run on the test's thread in turns: the
    // payload fits the socket buffers up to a few MiB only with the
    // receiver draining, so send in pieces.
    for (size_t off = 0; off < size; off += 256 * 1024) {
      std::string piece = data.substr(off, 256 * 1024);
      sendAll(in.far, piece);
      moveAll(pipe_, in.near, out.near, piece.size());
      got += recvExactly(out.far, piece.size());
    }
    EXPECT_TRUE(got == data) << "bytes differ";
  }
}

TEST_F(SplicePipeTest, NothingToReadIsEagainAndAnEndIsZero) {
  TcpPair in;
  TcpPair out;
  SplicePipe::Transfer t = pipe_->move(in.near, out.near);
  EXPECT_EQ(t.taken, -EAGAIN);
  sendAll(in.far, "last words");
  ::shutdown(in.far, SHUT_WR);
  moveAll(pipe_, in.near, out.near, 10);
  ASSERT_TRUE(readable(in.near));
  t = pipe_->move(in.near, out.near);
  EXPECT_EQ(t.taken, 0) << "EOF";
  EXPECT_EQ(recvExactly(out.far, 10), "last words");
}

TEST_F(SplicePipeTest, WhatAFullDestinationDoesNotTakeComesOutOfThePipeInOrder) {
  TcpPair in;
  TcpPair out;
  int small = 16 * 1024;
  ASSERT_EQ(::setsockopt(out.near, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_EQ(::setsockopt(out.far, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  std::string data = randomBytes(2 << 20);
  std::string delivered_order;  // what left through the pipe, in order
  size_t sent = 0;
  size_t spliced = 0;
  std::string rest;
  // Nobody reads out.far: the destination fills up, then a transfer leaves
  // bytes in the pipe.
  while (rest.empty()) {
    ASSERT_LT(sent, data.size()) << "the destination never filled up";
    std::string piece = data.substr(sent, 128 * 1024);
    sendAll(in.far, piece);
    sent += piece.size();
    size_t taken = 0;
    while (taken < piece.size()) {
      ASSERT_TRUE(readable(in.near));
      SplicePipe::Transfer t = pipe_->move(in.near, out.near);
      ASSERT_GT(t.taken, 0);
      ASSERT_EQ(t.to_error, 0);
      taken += static_cast<size_t>(t.taken);
      spliced += static_cast<size_t>(t.taken) - t.left;
      if (t.left > 0) {
        rest.resize(t.left);
        ASSERT_EQ(pipe_->readLeft(rest.data(), rest.size()), t.left);
        break;
      }
    }
    if (!rest.empty()) {
      // The rest of the piece is still in `in`; what reached `out` plus the
      // rest is a prefix of the data, in order.
      std::string at_out = recvExactly(out.far, spliced);
      EXPECT_TRUE(at_out + rest == data.substr(0, spliced + rest.size())) << "order";
    }
  }
  expectNextTransferCarriesOnly("fresh");
}

TEST_F(SplicePipeTest, ADestinationThatResetIsAnErrorAndLeavesThePipeEmpty) {
  TcpPair in;
  TcpPair out;
  linger hard{1, 0};
  ASSERT_EQ(::setsockopt(out.far, SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  ::close(out.far);                             // RST
  out.far = ::socket(AF_INET, SOCK_STREAM, 0);  // for the destructor
  ASSERT_TRUE(readable(out.near));              // the reset has arrived
  sendAll(in.far, randomBytes(512 * 1024));
  int to_error = 0;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (to_error == 0 && Clock::now() < deadline) {
    ASSERT_TRUE(readable(in.near));
    SplicePipe::Transfer t = pipe_->move(in.near, out.near);
    ASSERT_GT(t.taken, 0);
    to_error = t.to_error;
  }
  EXPECT_TRUE(to_error == -ECONNRESET || to_error == -EPIPE) << to_error;
  expectNextTransferCarriesOnly("clean");
}

TEST_F(SplicePipeTest, ADestinationSpliceRefusesTurnsSplicingOffAndKeepsTheBytes) {
  // splice() into a file opened for appending is EINVAL: the stand-in for a
  // kernel, socket type or seccomp filter that refuses.
  char path[] = "/tmp/sy-splice-XXXXXX";
  int file = ::mkstemp(path);
  ASSERT_GE(file, 0);
  ::unlink(path);
  ASSERT_EQ(::fcntl(file, F_SETFL, O_APPEND), 0);
  TcpPair in;
  sendAll(in.far, "kept in order");
  ASSERT_TRUE(readable(in.near));
  SplicePipe::Transfer t = pipe_->move(in.near, file);
  EXPECT_EQ(t.taken, 13);
  EXPECT_EQ(t.to_error, 0) << "not the connection's fault";
  ASSERT_EQ(t.left, 13u);
  std::string rest(t.left, '\0');
  ASSERT_EQ(pipe_->readLeft(rest.data(), rest.size()), 13u);
  EXPECT_EQ(rest, "kept in order");
  EXPECT_EQ(SplicePipe::get(), nullptr) << "tunnels copy from now on";
  ::close(file);
  SplicePipe::enableAgain();
  EXPECT_EQ(SplicePipe::get(), pipe_);
}

}  // namespace
}  // namespace switchyard
