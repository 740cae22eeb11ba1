// One host belongs to one fleet: which spellings are one host.
#include "server/host_keys.h"

#include <gtest/gtest.h>

namespace fleetwatch::server {
namespace {

TEST(HostKey, LoopbackAndWildcardNamesAreOneHost) {
  const std::string local = HostKey("127.0.0.1", 10998);
  EXPECT_EQ(local, "loopback:10998");
  for (const char* name :
       {"localhost", "LOCALHOST", "localhost.", "app.localhost", "localhost.localdomain",
        "ip6-localhost", "127.0.0.2", "127.255.0.1", "0.0.0.0", "::1", "[::1]",
        "::", "::ffff:127.0.0.1", "[::ffff:7f00:1]", "0:0:0:0:0:0:0:1"}) {
    EXPECT_EQ(HostKey(name, 10998), local) << name;
  }
  EXPECT_NE(HostKey("localhost", 10999), local);
}

TEST(HostKey, OtherHostsCompareCaseInsensitivelyAndCanonically) {
  EXPECT_EQ(HostKey("GPU-1.Example.com", 1), HostKey("gpu-1.example.com.", 1));
  EXPECT_EQ(HostKey("::ffff:10.0.0.1", 1), HostKey("10.0.0.1", 1));
  EXPECT_EQ(HostKey("2001:DB8::1", 1), HostKey("[2001:db8:0::1]", 1));
  EXPECT_NE(HostKey("10.0.0.1", 1), HostKey("10.0.0.2", 1));
  EXPECT_NE(HostKey("gpu-1", 1), HostKey("gpu-1", 2));
  EXPECT_NE(HostKey("mylocalhost", 1), HostKey("localhost", 1));
}

}  // namespace
}  // namespace fleetwatch::server
