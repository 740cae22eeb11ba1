#pragma once

// Certificates for TLS tests (util/certificates.h): a private CA and what it signs. Header-only;
// the helpers fail the current test when OpenSSL makes nothing.

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "util/certificates.h"

namespace fleetwatch::testing {

inline SelfSignedCertificate MustCreate(Result<SelfSignedCertificate> made) {
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : SelfSignedCertificate{};
}

// A self-signed certificate authority named `name`.
inline SelfSignedCertificate NewCa(const std::string& name) {
  SelfSignedRequest request;
  request.common_name = name;
  request.certificate_authority = true;
  return MustCreate(CreateSelfSignedCertificate(request));
}

}  // namespace fleetwatch::testing
