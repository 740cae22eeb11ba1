#include "store/secret_cipher.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/process.h"

namespace fleetwatch::store {
namespace {

namespace fs = std::filesystem;

std::array<uint8_t, SecretCipher::kKeyBytes> KeyOf(uint8_t fill) {
  std::array<uint8_t, SecretCipher::kKeyBytes> key{};
  key.fill(fill);
  return key;
}

// A fresh directory per test for the key file.
class KeyDir {
 public:
  fs::path file() const { return dir_.path() / "secret.key"; }

 private:
  testing::TempDir dir_;
};

TEST(SecretCipher, RoundTripsWithAFreshNonceEachTime) {
  const SecretCipher cipher(KeyOf(7));
  Result<std::string> a = cipher.Encrypt("agent-token-1234");
  Result<std::string> b = cipher.Encrypt("agent-token-1234");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->starts_with("enc:v1:")) << *a;
  EXPECT_NE(*a, *b);  // random 96-bit nonce per encryption
  EXPECT_EQ(a->find("agent-token"), std::string::npos);
  Result<std::string> back = cipher.Decrypt(*a);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, "agent-token-1234");
  Result<std::string> empty = cipher.Encrypt("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(cipher.Decrypt(*empty).value(), "");
}

TEST(SecretCipher, AnotherKeyOrChangedBytesDoNotDecrypt) {
  const SecretCipher cipher(KeyOf(7));
  std::string sealed = cipher.Encrypt("agent-token").value();
  Result<std::string> other = SecretCipher(KeyOf(8)).Decrypt(sealed);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  std::string tampered = sealed;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(cipher.Decrypt(tampered).ok());
  EXPECT_EQ(cipher.Decrypt("agent-token").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cipher.Decrypt("enc:v1:%%%").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cipher.Decrypt("enc:v1:AAAA").status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseSecretKey, AcceptsHexAndBase64OfExactly32Bytes) {
  const std::string hex(64, 'a');
  Result<std::array<uint8_t, 32>> from_hex = ParseSecretKey(hex + "\n", "KEY");
  ASSERT_TRUE(from_hex.ok()) << from_hex.status().ToString();
  EXPECT_EQ(*from_hex, KeyOf(0xaa));
  const std::string b64 = EncodeBase64(std::string(32, '\x07'));
  EXPECT_EQ(ParseSecretKey(b64, "KEY").value(), KeyOf(7));
  std::string unpadded = b64;
  while (unpadded.back() == '=') unpadded.pop_back();
  EXPECT_EQ(ParseSecretKey(" " + unpadded + " ", "KEY").value(), KeyOf(7));

  for (const std::string& bad : {std::string(), std::string(62, 'a'), EncodeBase64("short"),
                                 EncodeBase64(std::string(33, 'x')), std::string(64, 'g')}) {
    Result<std::array<uint8_t, 32>> key = ParseSecretKey(bad, "FLEETWATCH_ENCRYPTION_KEY");
    ASSERT_FALSE(key.ok()) << bad;
    EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(key.status().message().find("FLEETWATCH_ENCRYPTION_KEY must hold a 32-byte key"),
              std::string::npos)
        << key.status().message();
  }
}

TEST(LoadOrCreateKeyFile, CreatesA0600KeyOnceAndReadsItBack) {
  KeyDir dir;
  Result<std::array<uint8_t, 32>> created = LoadOrCreateKeyFile(dir.file());
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(dir.file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  Result<std::array<uint8_t, 32>> again = LoadOrCreateKeyFile(dir.file());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *created);
}

TEST(LoadOrCreateKeyFile, RefusesAKeyFileOthersCanReadOrThatHoldsNoKey) {
  KeyDir dir;
  ASSERT_TRUE(LoadOrCreateKeyFile(dir.file()).ok());
  ASSERT_EQ(::chmod(dir.file().c_str(), 0644), 0);
  Result<std::array<uint8_t, 32>> open = LoadOrCreateKeyFile(dir.file());
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(open.status().message().find("chmod 600"), std::string::npos);

  ASSERT_EQ(::chmod(dir.file().c_str(), 0600), 0);
  std::ofstream(dir.file(), std::ios::trunc) << "not a key\n";
  Result<std::array<uint8_t, 32>> garbage = LoadOrCreateKeyFile(dir.file());
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace fleetwatch::store
