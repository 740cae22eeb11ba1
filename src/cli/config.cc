#include "cli/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/names.h"
#include "util/certificates.h"
#include "util/private_file.h"

namespace fleetwatch::cli {
namespace {

struct ConfigKey {
  const char* name;
  std::optional<std::string> SettingValues::*field;
};
constexpr ConfigKey kKeys[] = {{"url", &SettingValues::url},
                               {"token", &SettingValues::token},
                               {"project", &SettingValues::project},
                               {"ca_cert", &SettingValues::ca_cert}};

std::string ErrnoText() { return std::strerror(errno); }

// The file's YAML, or an empty node for a missing file.
Result<YAML::Node> LoadYaml(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return YAML::Node(YAML::NodeType::Null);
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read " + path.string() + ": " + ErrnoText());
  std::stringstream text;
  text << in.rdbuf();
  try {
    YAML::Node root = YAML::Load(text.str());
    if (!root.IsNull() && !root.IsMap()) {
      return InvalidArgument(path.string() + " is not a YAML mapping of url, token and project");
    }
    return root;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path.string() + " is not valid YAML (line " +
                           std::to_string(e.mark.line + 1) + "); fix or remove it");
  }
}

// Returns the first non-empty of the candidates, with the name of its source.
struct Chosen {
  std::optional<std::string> value;
  std::string source;
};

Chosen Choose(const std::optional<std::string>& flag, const char* flag_name,
              const std::optional<std::string>& env, const char* env_name,
              const std::optional<std::string>& file, const std::string& file_name) {
  if (flag && !flag->empty()) return {flag, std::string("--") + flag_name};
  if (env && !env->empty()) return {env, env_name};
  if (file && !file->empty()) return {file, file_name};
  return {std::nullopt, ""};
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::filesystem::path ConfigFilePath(const std::filesystem::path& home) {
  return home / ".fleetwatch" / "config.yml";
}

Result<std::filesystem::path> ConfigFilePathFromEnv(const EnvLookup& env) {
  std::optional<std::string> home = env("HOME");
  if (!home || home->empty()) {
    return FailedPrecondition("HOME is not set, so there is no config file (~/.fleetwatch)");
  }
  return ConfigFilePath(*home);
}

Result<SettingValues> ReadConfigFile(const std::filesystem::path& path) {
  FW_ASSIGN_OR_RETURN(const YAML::Node root, LoadYaml(path));
  SettingValues values;
  if (root.IsNull()) return values;
  for (const ConfigKey& key : kKeys) {
    YAML::Node node = root[key.name];
    if (!node || node.IsNull()) continue;
    if (!node.IsScalar()) {
      return InvalidArgument(path.string() + ": `" + key.name + "` must be a string");
    }
    values.*key.field = node.Scalar();
  }
  return values;
}

Status UpdateConfigFile(const std::filesystem::path& path, const SettingValues& updates) {
  std::filesystem::path dir = path.parent_path();
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Internal("cannot create " + dir.string() + ": " + ErrnoText());
  }
  FW_ASSIGN_OR_RETURN(YAML::Node root, LoadYaml(path));
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  for (const ConfigKey& key : kKeys) {
    if (const auto& value = updates.*key.field) root[key.name] = *value;
  }
  YAML::Emitter out;
  out << root;
  if (!out.good()) return Internal("cannot write the config: " + out.GetLastError());
  return WritePrivateFileAtomically(path, std::string(out.c_str()) + "\n");
}

Result<ClientSettings> ResolveClientSettings(const SettingValues& flags, const EnvLookup& env) {
  SettingValues from_env{env("FLEETWATCH_URL"), env("FLEETWATCH_TOKEN"), env("FLEETWATCH_PROJECT"),
                         env("FLEETWATCH_CA_CERT")};
  auto given = [](const std::optional<std::string>& a, const std::optional<std::string>& b) {
    return (a && !a->empty()) || (b && !b->empty());
  };
  auto https = [](const std::optional<std::string>& url) {
    return url && url->rfind("https://", 0) == 0;
  };
  SettingValues from_file;
  std::string file_name = "~/.fleetwatch/config.yml";
  bool need_file = !given(flags.url, from_env.url) || !given(flags.token, from_env.token) ||
                   !given(flags.project, from_env.project) ||
                   (https(flags.url && !flags.url->empty() ? flags.url : from_env.url) &&
                    !given(flags.ca_cert, from_env.ca_cert));
  if (need_file) {
    Result<std::filesystem::path> path = ConfigFilePathFromEnv(env);
    if (path.ok()) {
      file_name = path->string();
      FW_ASSIGN_OR_RETURN(from_file, ReadConfigFile(*path));
    }
  }

  Chosen url = Choose(flags.url, "url", from_env.url, "FLEETWATCH_URL", from_file.url, file_name);
  Chosen token =
      Choose(flags.token, "token", from_env.token, "FLEETWATCH_TOKEN", from_file.token, file_name);
  Chosen project = Choose(flags.project, "project", from_env.project, "FLEETWATCH_PROJECT",
                          from_file.project, file_name);
  if (!url.value || !token.value) {
    return FailedPrecondition(std::string("no server ") + (!url.value ? "URL" : "token") +
                              " configured: run fleetwatch config --url URL --token TOKEN " +
                              "(or pass --url/--token, or set FLEETWATCH_URL/FLEETWATCH_TOKEN)");
  }

  ClientSettings settings;
  Result<std::string> normalized = NormalizeServerUrl(*url.value);
  if (!normalized.ok()) {
    return InvalidArgument(normalized.status().message() + " (from " + url.source + ")");
  }
  settings.url = std::move(normalized).value();
  Chosen ca_cert = Choose(flags.ca_cert, "ca-cert", from_env.ca_cert, "FLEETWATCH_CA_CERT",
                          from_file.ca_cert, file_name);
  if (https(settings.url) && ca_cert.value) {
    Result<std::string> pem = ReadCaCertificates(*ca_cert.value);
    if (!pem.ok())
      return InvalidArgument(pem.status().message() + " (from " + ca_cert.source + ")");
    settings.ca_cert_pem = std::move(pem).value();
  }
  if (Status s = ValidateToken(*token.value); !s.ok()) {
    return InvalidArgument(s.message() + " (from " + token.source + ")");
  }
  settings.token = *token.value;
  settings.project = project.value ? *project.value : std::string(kDefaultProject);
  if (Status s = model::ValidateName("project name", settings.project); !s.ok()) {
    return InvalidArgument(s.message() + (project.value ? " (from " + project.source + ")" : ""));
  }
  return settings;
}

Result<std::string> ReadCaCertificates(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return InvalidArgument("cannot read the CA certificate " + file.string() + ": " + ErrnoText());
  }
  std::stringstream text;
  text << in.rdbuf();
  if (Status valid = ValidateCertificatesPem(text.str()); !valid.ok()) {
    return InvalidArgument("the CA certificate " + file.string() + " " + valid.message());
  }
  return text.str();
}

Result<std::string> NormalizeServerUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("the server URL must look like http[s]://host[:port] (" +
                           std::string(why) + ")");
  };
  std::string_view scheme = "http://";
  if (url.substr(0, 8) == "https://") scheme = "https://";
  if (url.substr(0, scheme.size()) != scheme) {
    return bad(url.find("://") != std::string_view::npos
                   ? "only http:// and https:// are supported"
                   : "it does not start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]
    size_t close_bracket = rest.find(']');
    if (close_bracket == std::string_view::npos) return bad("unclosed '['");
    host = rest.substr(0, close_bracket + 1);
    std::string_view after = rest.substr(close_bracket + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after the host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
    for (char c : host.substr(1, host.size() - 2)) {
      bool ok = std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
      if (!ok) return bad("bad IPv6 address");
    }
    if (host.size() <= 2) return bad("empty host");
  } else {
    size_t colon = rest.find(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
    if (host.empty()) return bad("no host");
    for (char c : host) {
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
      if (!ok) return bad("the host may hold only letters, digits, '.' and '-'");
    }
  }
  if (!port.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
  }
  return std::string(scheme) + std::string(rest);
}

Status ValidateToken(std::string_view token) {
  if (token.empty()) return InvalidArgument("the token must not be empty");
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument("the token may hold only printable ASCII characters, no spaces");
    }
  }
  return Status::Ok();
}

std::string MaskToken(std::string_view token) {
  if (token.size() <= 4) return "…";
  return std::string(token.substr(0, 4)) + "…";
}

}  // namespace fleetwatch::cli
