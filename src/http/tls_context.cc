#include "http/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include "util/certificates.h"

namespace fleetwatch::http::internal {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

// A process polls a bounded set of CAs; past this many distinct ones the cache starts over.
constexpr size_t kMaxCachedContexts = 1024;

void RequireModernTls(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
}

bool IsIpAddress(std::string_view host) {
  boost::system::error_code ec;
  asio::ip::make_address(std::string(host), ec);
  return !ec;
}

std::string ErrorText(const boost::system::error_code& ec) {
  std::string text = ec.message();
  // OpenSSL's texts come as "wrong version number (SSL routines)"; the routine adds nothing.
  if (const size_t at = text.rfind(" ("); at != std::string::npos && text.ends_with(" routines)")) {
    text.resize(at);
  }
  return text;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> NewServerContext(const TlsServerOptions& options) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  RequireModernTls(*context);
  boost::system::error_code ec;
  context->use_certificate_chain_file(options.certificate_file, ec);
  if (ec) {
    return InvalidArgument("cannot load the TLS certificate " + options.certificate_file + ": " +
                           ErrorText(ec));
  }
  context->use_private_key_file(options.private_key_file, ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    return InvalidArgument("the TLS private key " + options.private_key_file +
                           " does not match the certificate " + options.certificate_file);
  }
  if (ec) {
    return InvalidArgument("cannot load the TLS private key " + options.private_key_file + ": " +
                           ErrorText(ec));
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return InvalidArgument("the TLS private key " + options.private_key_file +
                           " does not match the certificate " + options.certificate_file);
  }
  return context;
}

Result<std::shared_ptr<ssl::context>> ClientContextCache::Get(const TlsClientOptions& options) {
  std::string key = !options.fingerprint.empty()           ? std::string("pinned")
                    : !options.ca_certificates_pem.empty() ? "ca:" + options.ca_certificates_pem
                                                           : std::string("system");
  MutexLock lock(mu_);
  if (auto it = contexts_.find(key); it != contexts_.end()) return it->second;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  RequireModernTls(*context);
  boost::system::error_code ec;
  if (!options.fingerprint.empty()) {
    // The pin decides, after the handshake; the chain is not looked at.
    context->set_verify_mode(ssl::verify_none);
  } else if (!options.ca_certificates_pem.empty()) {
    FW_RETURN_IF_ERROR(ValidateCertificatesPem(options.ca_certificates_pem));
    context->add_certificate_authority(asio::buffer(options.ca_certificates_pem), ec);
    if (ec) return InvalidArgument("cannot load the CA certificates: " + ErrorText(ec));
    context->set_verify_mode(ssl::verify_peer);
  } else {
    context->set_default_verify_paths(ec);
    if (ec) return Internal("cannot load the system CA store: " + ErrorText(ec));
    context->set_verify_mode(ssl::verify_peer);
  }
  if (contexts_.size() >= kMaxCachedContexts) contexts_.clear();
  contexts_.emplace(std::move(key), context);
  return context;
}

Status PrepareClient(SSL* ssl, const TlsClientOptions& options, std::string_view host) {
  const std::string name(host);
  const bool ip = IsIpAddress(name);
  if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return InvalidArgument("cannot use \"" + name + "\" as a TLS server name");
  }
  if (!options.fingerprint.empty()) return Status::Ok();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  if (set != 1) return InvalidArgument("cannot check certificates for host \"" + name + "\"");
  return Status::Ok();
}

Status CheckPeer(SSL* ssl, const TlsClientOptions& options) {
  if (options.fingerprint.empty()) return Status::Ok();  // verified during the handshake
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return Unavailable("the server sent no certificate");
  const int size = i2d_X509(peer, nullptr);
  if (size <= 0) return Unavailable("the server's certificate cannot be encoded");
  std::string der(static_cast<size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(peer, &out);
  const std::string actual = FingerprintOfDer(der);
  if (actual != options.fingerprint) {
    return Unavailable("certificate fingerprint " + actual + " does not match the pinned " +
                       options.fingerprint);
  }
  return Status::Ok();
}

std::string HandshakeFailure(SSL* ssl, const boost::system::error_code& ec,
                             const TlsClientOptions& options) {
  const long verify = SSL_get_verify_result(ssl);
  // With a pin, OpenSSL records its (ignored) chain verdict too: it is not why this failed.
  if (options.fingerprint.empty() && verify != X509_V_OK) {
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  }
  std::string why = ErrorText(ec);
  if (ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_WRONG_VERSION_NUMBER ||
      why.find("wrong version number") != std::string::npos) {
    why += " (does the peer speak plain HTTP?)";
  }
  return "TLS handshake failed: " + why;
}

}  // namespace fleetwatch::http::internal
