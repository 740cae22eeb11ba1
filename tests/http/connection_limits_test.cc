#include "http/connection_limits.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace fleetwatch::http {
namespace {

TEST(ConnectionLimits, RefusesBeyondTheTotalCapAndCountsIt) {
  ConnectionLimits limits(2, 0);
  std::optional<ConnectionLimits::Slot> a = limits.Admit("10.0.0.1");
  std::optional<ConnectionLimits::Slot> b = limits.Admit("10.0.0.2");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(limits.Admit("10.0.0.3"));
  EXPECT_EQ(limits.stats().open, 2);
  EXPECT_EQ(limits.stats().refused_total, 1u);
  a.reset();
  EXPECT_EQ(limits.stats().open, 1);
  EXPECT_TRUE(limits.Admit("10.0.0.3"));
  EXPECT_EQ(limits.stats().open, 1);  // the temporary slot was released again
}

TEST(ConnectionLimits, CapsUnauthenticatedConnectionsPerAddressOnly) {
  ConnectionLimits limits(0, 2);
  std::vector<ConnectionLimits::Slot> slots;
  slots.push_back(*limits.Admit("10.0.0.1"));
  slots.push_back(*limits.Admit("10.0.0.1"));
  EXPECT_FALSE(limits.Admit("10.0.0.1"));
  EXPECT_TRUE(limits.Admit("10.0.0.2"));  // another address has its own count
  EXPECT_EQ(limits.stats().refused_unauthenticated_total, 1u);
  EXPECT_EQ(limits.stats().refused_total, 0u);

  // An authenticated connection no longer counts; marking twice frees only one place.
  slots[0].MarkAuthenticated();
  slots[0].MarkAuthenticated();
  std::optional<ConnectionLimits::Slot> third = limits.Admit("10.0.0.1");
  ASSERT_TRUE(third);
  EXPECT_FALSE(limits.Admit("10.0.0.1"));
  // Closing the authenticated one does not free an unauthenticated place.
  slots.erase(slots.begin());
  EXPECT_FALSE(limits.Admit("10.0.0.1"));
  third.reset();
  EXPECT_TRUE(limits.Admit("10.0.0.1"));
}

TEST(ConnectionLimits, AMovedSlotReleasesOnce) {
  ConnectionLimits limits(1, 1);
  {
    std::optional<ConnectionLimits::Slot> slot = limits.Admit("a");
    ASSERT_TRUE(slot);
    ConnectionLimits::Slot moved(std::move(*slot));
    slot.reset();
    EXPECT_EQ(limits.stats().open, 1);
  }
  EXPECT_EQ(limits.stats().open, 0);
  EXPECT_TRUE(limits.Admit("a"));
}

}  // namespace
}  // namespace fleetwatch::http
