#pragma once

#include <string>

namespace fleetwatch::http {

// TLS settings, kept free of OpenSSL and Asio headers so that any caller may include them. The
// OpenSSL contexts they describe live in tls_context.cc.

// A server's certificate chain and private key, PEM files read when the server starts.
struct TlsServerOptions {
  std::string certificate_file;
  std::string private_key_file;
};

// How a client checks the server it talks to over HTTPS (TLS 1.2 or newer). Exactly one of:
//  - `fingerprint` ("sha256:<64 lowercase hex>", see NormalizeFingerprint): the SHA-256 of the
//    peer's leaf certificate (DER) must equal it; neither the chain nor the host name matter,
//    like an SSH host key;
//  - `ca_certificates_pem`: the chain must lead to one of these CA certificates and the
//    certificate must name the host (DNS name or IP address);
//  - neither: the system's CA store, with the host name check.
struct TlsClientOptions {
  std::string fingerprint;
  std::string ca_certificates_pem;

  bool operator==(const TlsClientOptions&) const = default;
};

}  // namespace fleetwatch::http
