#pragma once

// Internal to http/: OpenSSL contexts for the server and the clients. Includes boost/asio/ssl,
// so include it from .cc files only; callers outside http/ see tls_options.h.

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "http/tls_options.h"
#include "util/mutex.h"
#include "util/status.h"

namespace fleetwatch::http::internal {

// A server context for TLS 1.2+ with the certificate chain and key of `options`.
// InvalidArgument naming the file when either does not load or they do not match.
Result<std::shared_ptr<boost::asio::ssl::context>> NewServerContext(
    const TlsServerOptions& options);

// Client contexts, one per distinct verification setting (every pinned fingerprint shares one:
// the pin is checked after the handshake), built on first use and kept. Thread-safe.
class ClientContextCache {
 public:
  // InvalidArgument when the CA certificates do not load.
  Result<std::shared_ptr<boost::asio::ssl::context>> Get(const TlsClientOptions& options)
      FW_EXCLUDES(mu_);

 private:
  Mutex mu_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> contexts_ FW_GUARDED_BY(mu_);
};

// Prepares `ssl` (not yet connected) for talking to `host`: SNI for DNS names, and unless a
// fingerprint is pinned the host name or IP check during verification.
Status PrepareClient(SSL* ssl, const TlsClientOptions& options, std::string_view host);

// After a successful handshake: with a pinned fingerprint, Unavailable "certificate fingerprint
// sha256:... does not match the pinned sha256:..." unless the peer's leaf certificate has it.
Status CheckPeer(SSL* ssl, const TlsClientOptions& options);

// Why a handshake failed, e.g. "certificate verify failed: unable to get local issuer
// certificate" or "TLS handshake failed: wrong version number".
std::string HandshakeFailure(SSL* ssl, const boost::system::error_code& ec,
                             const TlsClientOptions& options);

}  // namespace fleetwatch::http::internal
