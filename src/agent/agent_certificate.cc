#include "agent/agent_certificate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/certificates.h"
#include "util/private_file.h"

namespace fleetwatch::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kCertificateName[] = "tls.crt";
constexpr char kKeyName[] = "tls.key";
constexpr int kValidDays = 3650;

Result<std::string> ReadText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Unavailable("cannot read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return Unavailable("cannot read " + file.string());
  return text.str();
}

void AddUnique(std::vector<std::string>& list, std::string value) {
  if (!value.empty() && std::find(list.begin(), list.end(), value) == list.end()) {
    list.push_back(std::move(value));
  }
}

}  // namespace

Result<std::string> FingerprintOfCertificateFile(const fs::path& file) {
  FW_ASSIGN_OR_RETURN(std::string pem, ReadText(file));
  Result<std::string> fingerprint = FingerprintOfPem(pem);
  if (!fingerprint.ok()) {
    return InvalidArgument(file.string() + ": " + fingerprint.status().message());
  }
  return fingerprint;
}

Result<AgentCertificate> EnsureSelfSignedCertificate(const fs::path& dir,
                                                     const std::vector<std::string>& dns_names,
                                                     const std::vector<std::string>& ip_addresses) {
  AgentCertificate out;
  out.certificate_file = dir / kCertificateName;
  out.private_key_file = dir / kKeyName;
  std::error_code ec;
  const bool have_certificate = fs::exists(out.certificate_file, ec);
  const bool have_key = fs::exists(out.private_key_file, ec);
  if (have_certificate && have_key) {
    Result<std::string> fingerprint = FingerprintOfCertificateFile(out.certificate_file);
    if (!fingerprint.ok() && fingerprint.status().code() == StatusCode::kInvalidArgument) {
      return FailedPrecondition(fingerprint.status().message() + "; remove " +
                                out.certificate_file.string() + " and " +
                                out.private_key_file.string() + " to make a new certificate");
    }
    FW_RETURN_IF_ERROR(fingerprint.status());
    out.fingerprint = std::move(fingerprint).value();
    return out;
  }
  if (have_certificate != have_key) {
    return FailedPrecondition("only one of " + out.certificate_file.string() + " and " +
                              out.private_key_file.string() +
                              " exists; remove it to make a new certificate");
  }

  SelfSignedRequest request;
  request.common_name = dns_names.empty() ? "fleetwatch agent" : dns_names.front();
  request.dns_names = dns_names;
  request.ip_addresses = ip_addresses;
  request.valid_days = kValidDays;
  FW_ASSIGN_OR_RETURN(SelfSignedCertificate made, CreateSelfSignedCertificate(request));
  // The key first: a certificate file is only ever beside its key.
  FW_RETURN_IF_ERROR(WritePrivateFileAtomically(out.private_key_file, made.private_key_pem));
  FW_RETURN_IF_ERROR(WritePrivateFileAtomically(out.certificate_file, made.certificate_pem));
  out.fingerprint = made.fingerprint;
  out.created = true;
  return out;
}

void ListenNames(const std::string& listen_host, std::vector<std::string>& dns_names,
                 std::vector<std::string>& ip_addresses) {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0) AddUnique(dns_names, name);
  AddUnique(dns_names, "localhost");
  in6_addr v6{};
  in_addr v4{};
  const bool is_v4 = inet_pton(AF_INET, listen_host.c_str(), &v4) == 1;
  const bool is_v6 = inet_pton(AF_INET6, listen_host.c_str(), &v6) == 1;
  const bool wildcard =
      (is_v4 && v4.s_addr == htonl(INADDR_ANY)) || (is_v6 && IN6_IS_ADDR_UNSPECIFIED(&v6));
  if (!is_v4 && !is_v6) {
    AddUnique(dns_names, listen_host);
  } else if (!wildcard) {
    AddUnique(ip_addresses, listen_host);
  } else {
    ifaddrs* interfaces = nullptr;
    if (::getifaddrs(&interfaces) == 0) {
      for (ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        const int family = i->ifa_addr->sa_family;
        if (family == AF_INET) {
          inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text,
                    sizeof text);
        } else if (family == AF_INET6) {
          const auto* address = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
          if (IN6_IS_ADDR_LINKLOCAL(&address->sin6_addr)) continue;  // scoped: not in a SAN
          inet_ntop(AF_INET6, &address->sin6_addr, text, sizeof text);
        } else {
          continue;
        }
        AddUnique(ip_addresses, text);
      }
      ::freeifaddrs(interfaces);
    }
  }
  AddUnique(ip_addresses, "127.0.0.1");
  AddUnique(ip_addresses, "::1");
}

}  // namespace fleetwatch::agent
