#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace fleetwatch {

// X.509 helpers for TLS on the API and agent hops (OpenSSL). All functions are thread-safe and
// keep no state.

// "sha256:<64 hex>" (upper or lower case, with or without ':' between byte pairs) →
// "sha256:<64 lowercase hex>"; InvalidArgument otherwise.
Result<std::string> NormalizeFingerprint(std::string_view text);

// The SHA-256 fingerprint of a DER-encoded certificate as "sha256:<64 lowercase hex>".
std::string FingerprintOfDer(std::string_view der);

// The fingerprint of the first certificate in PEM text; InvalidArgument when there is none or
// it does not parse.
Result<std::string> FingerprintOfPem(std::string_view pem);

// InvalidArgument unless `pem` holds one or more PEM certificates ("-----BEGIN CERTIFICATE-----"),
// all of which parse, and nothing else but whitespace. At most 64 certificates.
Status ValidateCertificatesPem(std::string_view pem);

struct SelfSignedRequest {
  std::string common_name;                // subject CN (and issuer CN when self-signed)
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (IPv4 or IPv6 text)
  int valid_days = 3650;
  bool certificate_authority = false;  // CA:TRUE with keyCertSign instead of a server certificate
};

struct SelfSignedCertificate {
  std::string certificate_pem;
  std::string private_key_pem;  // PKCS#8, unencrypted
  std::string fingerprint;      // "sha256:<hex>" of the certificate
};

// A new EC P-256 key and a self-signed X.509 v3 certificate for it (SHA-256 signature, random
// serial, CA:FALSE and serverAuth unless request.certificate_authority). InvalidArgument for an
// IP address that does not parse, Internal when OpenSSL fails.
Result<SelfSignedCertificate> CreateSelfSignedCertificate(const SelfSignedRequest& request);

// The same, but the certificate is signed by `issuer` (a certificate authority made above), as
// for a private CA. InvalidArgument when the issuer's PEM texts do not parse.
Result<SelfSignedCertificate> CreateSignedCertificate(const SelfSignedRequest& request,
                                                      const SelfSignedCertificate& issuer);

}  // namespace fleetwatch
