#include "rules/version.h"

#include <gtest/gtest.h>

TEST(RulesVersion, IsSet) {
  EXPECT_STREQ(switchyard::rules::version(), "0.1.0");
}
