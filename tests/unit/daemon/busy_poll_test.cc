// BusyPoll on a real loop: reads (noteActivity) start the spin, a quiet
// window ends it, window 0 never spins, and a spinning loop does not sleep in
// its poll.
#include "daemon/busy_poll.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "tests/unit/test_support/loop_helpers.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class BusyPollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    owned_ = std::make_unique<BusyPoll>(&loop_);
    // The daemon's loop always has referenced handles (its listeners); a
    // loop without any would not even run its check handles.
    keep_alive_ = std::make_unique<test::TestTimer>(&loop_);
    uv_timer_start(
        &keep_alive_->timer, [](uv_timer_t*) {}, 60'000, 0);
  }
  void TearDown() override {
    keep_alive_.reset();
    owned_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // One loop turn: poll (without blocking), then the check handle.
  void turn() { uv_run(&loop_, UV_RUN_NOWAIT); }

  uv_loop_t loop_{};
  std::unique_ptr<BusyPoll> owned_;
  std::unique_ptr<test::TestTimer> keep_alive_;
};

TEST_F(BusyPollTest, OffByDefaultAndAtZero) {
  BusyPoll::noteActivity();
  turn();
  EXPECT_FALSE(owned_->spinning());
  owned_->setWindow(0ms);
  BusyPoll::noteActivity();
  turn();
  EXPECT_FALSE(owned_->spinning());
}

TEST_F(BusyPollTest, ActivityStartsTheSpinAndAQuietWindowEndsIt) {
  owned_->setWindow(20ms);
  turn();
  EXPECT_FALSE(owned_->spinning()) << "no activity yet";
  BusyPoll::noteActivity();
  turn();
  EXPECT_TRUE(owned_->spinning());
  // More activity inside the window keeps it going past the first window.
  auto start = Clock::now();
  while (Clock::now() - start < 30ms) {
    BusyPoll::noteActivity();
    turn();
    ASSERT_TRUE(owned_->spinning());
    std::this_thread::sleep_for(1ms);
  }
  // Then quiet: it stops once 20 ms passed without activity, not before.
  auto quiet_from = Clock::now();
  ASSERT_TRUE(test::runUntil(
      &loop_, [&] { return !owned_->spinning(); }, 2000ms));
  EXPECT_GE(Clock::now() - quiet_from, 19ms);
}

TEST_F(BusyPollTest, ASpinningLoopPollsWithoutSleeping) {
  // A referenced timer far away: without the spin, UV_RUN_ONCE would sleep
  // in epoll_wait until it fires.
  test::TestTimer far(&loop_);
  uv_timer_start(
      &far.timer, [](uv_timer_t*) {}, 10'000, 0);
  owned_->setWindow(1000ms);
  BusyPoll::noteActivity();
  turn();
  ASSERT_TRUE(owned_->spinning());
  auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    uv_run(&loop_, UV_RUN_ONCE);
  }
  EXPECT_LT(Clock::now() - start, 500ms);
  uv_timer_stop(&far.timer);
}

TEST_F(BusyPollTest, TurningItOffStopsASpin) {
  owned_->setWindow(1000ms);
  BusyPoll::noteActivity();
  turn();
  ASSERT_TRUE(owned_->spinning());
  owned_->setWindow(0ms);  // a reload that sets limits.busy_poll to 0
  EXPECT_FALSE(owned_->spinning());
  BusyPoll::noteActivity();
  turn();
  EXPECT_FALSE(owned_->spinning());
}

TEST_F(BusyPollTest, ItsHandlesDoNotKeepTheLoopAlive) {
  owned_->setWindow(1000ms);
  BusyPoll::noteActivity();
  turn();
  ASSERT_TRUE(owned_->spinning());
  // With nothing else referenced, the default run returns at once.
  uv_timer_stop(&keep_alive_->timer);
  auto start = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_LT(Clock::now() - start, 500ms);
}

}  // namespace
}  // namespace switchyard
