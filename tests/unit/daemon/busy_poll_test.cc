// SpinWindow's policy as a table of quiet periods, then BusyPoll on a real
// loop: steady reads (noteActivity) start the spin, a quiet window ends it,
// limit 0 never spins, and a spinning loop does not sleep in its poll.
#include "daemon/busy_poll.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "tests/unit/test_support/loop_helpers.h"

namespace switchyard {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Each step: the loop woke after `quiet_us` of quiet; the window after it.
struct WakeStep {
  uint64_t quiet_us;
  uint64_t window_ns;
};

struct SpinWindowCase {
  const char* name;
  uint64_t limit_us;
  std::vector<WakeStep> steps;
};

TEST(SpinWindowTest, GrowsWhenASpinWouldHaveCaughtTheWakeAndShrinksWhenNot) {
  const SpinWindowCase kCases[] = {
      {"first wake after a long sleep: no spin", 200, {{1'000'000, 0}}},
      {"request-response traffic grows it to the limit",
       200,
       {{90, 50'000},
        {90, 100'000},
        {90, 100'000},
        {150, 200'000},
        {150, 200'000},
        {199, 200'000}}},
      {"a wake just past the limit halves it", 200, {{100, 50'000}, {100, 100'000}, {201, 50'000}}},
      {"sparse traffic halves it down to nothing",
       200,
       {{100, 50'000},
        {100, 100'000},
        {150, 200'000},
        {5'000, 100'000},
        {5'000, 50'000},
        {5'000, 25'000},
        {5'000, 12'500},
        {5'000, 6'250},
        {5'000, 0},
        {5'000, 0}}},
      {"a wake within the window changes nothing",
       200,
       {{100, 50'000}, {100, 100'000}, {40, 100'000}}},
      {"a small limit caps the first growth",
       20,
       {{10, 20'000}, {15, 20'000}, {30, 10'000}, {30, 0}}},
      {"a large limit doubles all the way",
       1'000,
       {{900, 50'000},
        {900, 100'000},
        {900, 200'000},
        {900, 400'000},
        {900, 800'000},
        {900, 1'000'000},
        {900, 1'000'000}}},
      {"limit 0: never spins", 0, {{10, 0}, {0, 0}, {1'000'000, 0}}},
  };
  for (const SpinWindowCase& c : kCases) {
    SCOPED_TRACE(c.name);
    SpinWindow window;
    window.setLimit(c.limit_us * 1000);
    for (size_t i = 0; i < c.steps.size(); ++i) {
      window.noteWakeAfter(c.steps[i].quiet_us * 1000);
      EXPECT_EQ(window.ns(), c.steps[i].window_ns) << "step " << i;
    }
  }
}

TEST(SpinWindowTest, ALowerLimitCapsTheCurrentWindow) {
  SpinWindow window;
  window.setLimit(1'000'000);
  for (int i = 0; i < 6; ++i) {
    window.noteWakeAfter(900'000);
  }
  ASSERT_EQ(window.ns(), 1'000'000u);
  window.setLimit(200'000);
  EXPECT_EQ(window.ns(), 200'000u);
  window.setLimit(0);
  EXPECT_EQ(window.ns(), 0u);
  window.noteWakeAfter(1);
  EXPECT_EQ(window.ns(), 0u);
}

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

  // Activity about every millisecond for `duration`, ending with one: the
  // window grows to cover the gaps.
  void steadyTraffic(std::chrono::milliseconds duration) {
    auto start = Clock::now();
    while (Clock::now() - start < duration) {
      std::this_thread::sleep_for(1ms);
      turn();  // where a window shorter than the gap ends
      BusyPoll::noteActivity();
      turn();
    }
  }

  uv_loop_t loop_{};
  std::unique_ptr<BusyPoll> owned_;
  std::unique_ptr<test::TestTimer> keep_alive_;
};

TEST_F(BusyPollTest, OffUntilALimitIsSetAndAtZero) {
  steadyTraffic(10ms);
  EXPECT_FALSE(owned_->spinning());
  owned_->setLimit(0us);
  steadyTraffic(10ms);
  EXPECT_FALSE(owned_->spinning());
}

TEST_F(BusyPollTest, SteadyTrafficStartsTheSpinAndAQuietWindowEndsIt) {
  owned_->setLimit(20ms);
  turn();
  EXPECT_FALSE(owned_->spinning()) << "no activity yet";
  BusyPoll::noteActivity();
  turn();
  EXPECT_FALSE(owned_->spinning()) << "one read after a long sleep is not traffic";
  steadyTraffic(40ms);
  ASSERT_TRUE(owned_->spinning());
  // Gaps of about 1 ms: the window grew past them, and no further than the
  // limit.
  EXPECT_GE(owned_->window(), 1ms);
  EXPECT_LE(owned_->window(), 20ms);
  // Then quiet: it stops once a window passed without activity, not before.
  auto window = owned_->window();
  BusyPoll::noteActivity();
  turn();
  auto quiet_from = Clock::now();
  ASSERT_TRUE(test::runUntil(
      &loop_, [&] { return !owned_->spinning(); }, 2000ms));
  EXPECT_GE(Clock::now() - quiet_from, window - 1ms);
}

TEST_F(BusyPollTest, ASpinningLoopPollsWithoutSleeping) {
  // A referenced timer far away: without the spin, UV_RUN_ONCE would sleep
  // in epoll_wait until it fires.
  test::TestTimer far(&loop_);
  uv_timer_start(
      &far.timer, [](uv_timer_t*) {}, 10'000, 0);
  owned_->setLimit(1000ms);
  steadyTraffic(20ms);
  BusyPoll::noteActivity();
  turn();
  ASSERT_TRUE(owned_->spinning());
  ASSERT_GE(owned_->window(), 1ms);
  auto start = Clock::now();
  for (int i = 0; i < 100; ++i) {
    uv_run(&loop_, UV_RUN_ONCE);
  }
  EXPECT_LT(Clock::now() - start, 500ms);
  uv_timer_stop(&far.timer);
}

TEST_F(BusyPollTest, TurningItOffStopsASpin) {
  owned_->setLimit(1000ms);
  steadyTraffic(10ms);
  ASSERT_TRUE(owned_->spinning());
  owned_->setLimit(0us);  // a reload that sets limits.busy_poll to 0
  EXPECT_FALSE(owned_->spinning());
  steadyTraffic(10ms);
  EXPECT_FALSE(owned_->spinning());
}

TEST_F(BusyPollTest, ItsHandlesDoNotKeepTheLoopAlive) {
  owned_->setLimit(1000ms);
  steadyTraffic(10ms);
  ASSERT_TRUE(owned_->spinning());
  // With nothing else referenced, the default run returns at once.
  uv_timer_stop(&keep_alive_->timer);
  auto start = Clock::now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_LT(Clock::now() - start, 500ms);
}

}  // namespace
}  // namespace switchyard
