#include "util/certificates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace fleetwatch {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(NormalizeFingerprint, AcceptsColonsAndUpperCase) {
  const std::string hex = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
  std::string with_colons;
  for (size_t i = 0; i < hex.size(); i += 2) {
    with_colons += (i ? ":" : "") + hex.substr(i, 2);
  }
  std::string lower = hex;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const std::string& text : {"sha256:" + hex, "SHA256:" + with_colons, "sha256:" + lower}) {
    Result<std::string> normalized = NormalizeFingerprint(text);
    ASSERT_TRUE(normalized.ok()) << text;
    EXPECT_EQ(*normalized, "sha256:" + lower);
  }
}

TEST(NormalizeFingerprint, RefusesAnythingElse) {
  const std::string hex(64, 'a');
  for (const std::string& text :
       {std::string(), hex, "sha1:" + hex, "sha256:" + hex.substr(1), "sha256:" + hex + "aa",
        "sha256:" + hex.substr(2) + "zz", "sha256::" + hex, "sha256:" + hex + ":",
        "sha256:a:" + hex.substr(1)}) {
    Result<std::string> normalized = NormalizeFingerprint(text);
    EXPECT_FALSE(normalized.ok()) << text;
    if (!normalized.ok()) {
      EXPECT_THAT(normalized.status().message(), HasSubstr("64 hex digits"));
    }
  }
}

TEST(SelfSignedCertificate, FingerprintIsTheSha256OfTheCertificate) {
  SelfSignedRequest request;
  request.common_name = "agent-1";
  request.dns_names = {"agent-1", "localhost"};
  request.ip_addresses = {"127.0.0.1", "::1"};
  Result<SelfSignedCertificate> made = CreateSelfSignedCertificate(request);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_THAT(made->certificate_pem, StartsWith("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(made->private_key_pem, StartsWith("-----BEGIN PRIVATE KEY-----"));
  EXPECT_TRUE(NormalizeFingerprint(made->fingerprint).ok());
  Result<std::string> from_pem = FingerprintOfPem(made->certificate_pem);
  ASSERT_TRUE(from_pem.ok());
  EXPECT_EQ(*from_pem, made->fingerprint);
  EXPECT_TRUE(ValidateCertificatesPem(made->certificate_pem).ok());
  // A new key and serial every time.
  Result<SelfSignedCertificate> again = CreateSelfSignedCertificate(request);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->fingerprint, made->fingerprint);
}

TEST(SelfSignedCertificate, BadIpAddressIsRefused) {
  SelfSignedRequest request;
  request.ip_addresses = {"not-an-ip"};
  EXPECT_FALSE(CreateSelfSignedCertificate(request).ok());
}

TEST(ValidateCertificatesPem, AcceptsABundleAndRefusesJunk) {
  Result<SelfSignedCertificate> a = CreateSelfSignedCertificate({});
  Result<SelfSignedCertificate> b = CreateSelfSignedCertificate({});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(ValidateCertificatesPem(a->certificate_pem + "\n" + b->certificate_pem).ok());

  const std::string corrupt = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  for (const std::string& pem : {std::string(), std::string("hello"), a->private_key_pem, corrupt,
                                 a->certificate_pem + "trailing words",
                                 a->certificate_pem.substr(0, a->certificate_pem.size() - 30)}) {
    EXPECT_FALSE(ValidateCertificatesPem(pem).ok()) << pem;
  }
}

}  // namespace
}  // namespace fleetwatch
