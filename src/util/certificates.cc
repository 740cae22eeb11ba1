#include "util/certificates.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <memory>

#include "util/ids.h"

namespace fleetwatch {
namespace {

constexpr std::string_view kSha256Prefix = "sha256:";
constexpr int kMaxCertificates = 64;

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using KeyContextPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

BioPtr ReadBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

Result<std::string> DerOf(X509* certificate) {
  int size = i2d_X509(certificate, nullptr);
  if (size <= 0) return InvalidArgument("the certificate cannot be encoded");
  std::string der(static_cast<size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(certificate, &out);
  return der;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status AddExtension(X509* certificate, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) {
    return InvalidArgument("cannot add certificate extension " + value);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> NormalizeFingerprint(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(
        "must be sha256: followed by 64 hex digits (colons allowed), as the "
        "agent prints it");
  };
  if (text.size() < kSha256Prefix.size()) return bad();
  std::string prefix(text.substr(0, kSha256Prefix.size()));
  for (char& c : prefix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (prefix != kSha256Prefix) return bad();
  std::string hex;
  std::string_view rest = text.substr(kSha256Prefix.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (c == ':') {
      // Only between byte pairs.
      if (hex.empty() || hex.size() % 2 != 0 || i + 1 == rest.size()) return bad();
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) return bad();
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 64) return bad();
  return std::string(kSha256Prefix) + hex;
}

std::string FingerprintOfDer(std::string_view der) {
  return std::string(kSha256Prefix) + Sha256Hex(der);
}

Result<std::string> FingerprintOfPem(std::string_view pem) {
  BioPtr bio = ReadBio(pem);
  X509Ptr certificate(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!certificate) return InvalidArgument("no PEM certificate found");
  FW_ASSIGN_OR_RETURN(std::string der, DerOf(certificate.get()));
  return FingerprintOfDer(der);
}

Status ValidateCertificatesPem(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  size_t at = 0;
  int count = 0;
  while (true) {
    const size_t begin = pem.find(kBegin, at);
    if (!IsBlank(pem.substr(at, begin == std::string_view::npos ? pem.size() - at : begin - at))) {
      return InvalidArgument("must hold only PEM certificates (-----BEGIN CERTIFICATE----- ...)");
    }
    if (begin == std::string_view::npos) break;
    const size_t end = pem.find(kEnd, begin);
    if (end == std::string_view::npos) {
      return InvalidArgument("certificate " + std::to_string(count + 1) + " has no END line");
    }
    at = end + kEnd.size();
    if (++count > kMaxCertificates) {
      return InvalidArgument("holds more than " + std::to_string(kMaxCertificates) +
                             " certificates");
    }
    BioPtr bio = ReadBio(pem.substr(begin, at - begin));
    X509Ptr certificate(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!certificate) {
      return InvalidArgument("certificate " + std::to_string(count) + " is not a valid PEM X.509 " +
                             "certificate");
    }
  }
  if (count == 0) return InvalidArgument("must hold at least one PEM certificate");
  return Status::Ok();
}

namespace {

// A certificate for `request`, signed by `issuer` or, when null, by its own new key.
Result<SelfSignedCertificate> MakeCertificate(const SelfSignedRequest& request,
                                              const SelfSignedCertificate* issuer) {
  KeyContextPtr key_context(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* raw_key = nullptr;
  if (!key_context || EVP_PKEY_keygen_init(key_context.get()) != 1 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(key_context.get(), NID_X9_62_prime256v1) != 1 ||
      EVP_PKEY_keygen(key_context.get(), &raw_key) != 1) {
    return Internal("cannot generate an EC P-256 key");
  }
  KeyPtr key(raw_key);

  X509Ptr certificate(X509_new());
  if (!certificate) return Internal("cannot allocate a certificate");
  X509_set_version(certificate.get(), 2);  // v3
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return Internal("no random serial");
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  if (serial == nullptr) return Internal("cannot build a serial number");
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600);  // tolerate clock skew
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()),
                  static_cast<long>(request.valid_days) * 86'400);
  X509_set_pubkey(certificate.get(), key.get());
  X509_NAME* name = X509_get_subject_name(certificate.get());
  const std::string common_name =
      request.common_name.empty() ? std::string("fleetwatch") : request.common_name.substr(0, 64);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  KeyPtr issuer_key;
  X509Ptr issuer_certificate;
  if (issuer != nullptr) {
    BioPtr key_bio = ReadBio(issuer->private_key_pem);
    issuer_key.reset(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                             : nullptr);
    BioPtr cert_bio = ReadBio(issuer->certificate_pem);
    issuer_certificate.reset(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)
                                      : nullptr);
    if (!issuer_key || !issuer_certificate) {
      return InvalidArgument("the issuer's certificate or key does not parse");
    }
    X509_set_issuer_name(certificate.get(), X509_get_subject_name(issuer_certificate.get()));
  } else {
    X509_set_issuer_name(certificate.get(), name);
  }

  std::string alt_names;
  for (const std::string& dns : request.dns_names) {
    alt_names += (alt_names.empty() ? "" : ",") + std::string("DNS:") + dns;
  }
  for (const std::string& ip : request.ip_addresses) {
    alt_names += (alt_names.empty() ? "" : ",") + std::string("IP:") + ip;
  }
  if (!alt_names.empty()) {
    FW_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_subject_alt_name, alt_names));
  }
  if (request.certificate_authority) {
    FW_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_basic_constraints, "critical,CA:TRUE"));
    FW_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_key_usage, "critical,keyCertSign"));
  } else {
    FW_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_basic_constraints, "critical,CA:FALSE"));
    FW_RETURN_IF_ERROR(
        AddExtension(certificate.get(), NID_key_usage, "critical,digitalSignature,keyAgreement"));
    FW_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_ext_key_usage, "serverAuth"));
  }
  EVP_PKEY* signer = issuer_key ? issuer_key.get() : key.get();
  if (X509_sign(certificate.get(), signer, EVP_sha256()) <= 0) {
    return Internal("cannot sign the certificate");
  }

  SelfSignedCertificate out;
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), certificate.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return Internal("cannot encode the certificate or key as PEM");
  }
  out.certificate_pem = BioText(cert_bio.get());
  out.private_key_pem = BioText(key_bio.get());
  FW_ASSIGN_OR_RETURN(std::string der, DerOf(certificate.get()));
  out.fingerprint = FingerprintOfDer(der);
  return out;
}

}  // namespace

Result<SelfSignedCertificate> CreateSelfSignedCertificate(const SelfSignedRequest& request) {
  return MakeCertificate(request, nullptr);
}

Result<SelfSignedCertificate> CreateSignedCertificate(const SelfSignedRequest& request,
                                                      const SelfSignedCertificate& issuer) {
  return MakeCertificate(request, &issuer);
}

}  // namespace fleetwatch
