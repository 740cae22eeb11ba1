#include "util/check.h"

#include <gtest/gtest.h>

namespace fleetwatch {
namespace {

TEST(FwCheck, ATrueConditionDoesNothing) {
  int evaluated = 0;
  FW_CHECK(++evaluated == 1, "evaluated once");
  EXPECT_EQ(evaluated, 1);
}

TEST(FwCheckDeathTest, AFalseConditionAbortsNamingItAndTheMessage) {
  const int slots = 2;
  EXPECT_DEATH(FW_CHECK(slots > 3, "not from the registry"),
               "check_test.cc:[0-9]+: check failed: slots > 3: not from the registry");
}

}  // namespace
}  // namespace fleetwatch
