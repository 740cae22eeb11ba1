#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "util/status.h"

namespace fleetwatch::agent {

// The agent's TLS certificate and key files, and the certificate's SHA-256 fingerprint
// ("sha256:<hex>") that a fleet host entry pins.
struct AgentCertificate {
  std::filesystem::path certificate_file;
  std::filesystem::path private_key_file;
  std::string fingerprint;
  bool created = false;  // made by this call (first start)
};

// The agent's self-signed certificate in `dir` (tls.crt, tls.key): reused when both files exist,
// else created (EC P-256, 10 years, subjectAltName: `dns_names` and `ip_addresses`); the key file
// is created with mode 0600 before anything is written to it, and both files appear only when
// complete. Unavailable when the files cannot be read or written; FailedPrecondition when only
// one of them exists or the certificate does not parse (the message says to remove both).
// Not thread-safe with another call on the same directory.
Result<AgentCertificate> EnsureSelfSignedCertificate(const std::filesystem::path& dir,
                                                     const std::vector<std::string>& dns_names,
                                                     const std::vector<std::string>& ip_addresses);

// The fingerprint of the first certificate in a PEM file (for --tls-cert). Unavailable when it
// cannot be read, InvalidArgument when it holds no certificate.
Result<std::string> FingerprintOfCertificateFile(const std::filesystem::path& file);

// The names a self-signed certificate for an agent listening on `listen_host` should carry:
// this machine's host name and "localhost" (dns), and the listen address, or for a wildcard
// (0.0.0.0, ::) every address of the machine's interfaces, plus the loopback addresses (ip).
void ListenNames(const std::string& listen_host, std::vector<std::string>& dns_names,
                 std::vector<std::string>& ip_addresses);

}  // namespace fleetwatch::agent
