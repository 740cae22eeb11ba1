#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace fleetwatch::cli {

// Where a client command finds its server: url, token and project, each from a flag, else an
// environment variable (FLEETWATCH_URL, FLEETWATCH_TOKEN, FLEETWATCH_PROJECT), else the config
// file ~/.fleetwatch/config.yml (YAML keys `url`, `token`, `project`). For an https:// server,
// the CA certificate file that signed its certificate comes from FLEETWATCH_CA_CERT, else the
// file's `ca_cert` (set by `fleetwatch config --ca-cert FILE`), else the system CA store is used.

// The values one source provides; nullopt: that source does not set it.
struct SettingValues {
  std::optional<std::string> url;
  std::optional<std::string> token;
  std::optional<std::string> project;
  std::optional<std::string> ca_cert;  // a PEM file's absolute path
};

// The settings a client command uses, validated: url is "http[s]://host[:port]" with no trailing
// slash, token is printable ASCII, project is a valid name.
struct ClientSettings {
  std::string url;
  std::string token;
  std::string project;
  std::string ca_cert_pem;  // https only: the CA certificates to trust; empty: the system's
};

inline constexpr std::string_view kDefaultProject = "main";

// Looks up an environment variable; nullopt when unset. Lets tests supply their own environment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (getenv). Only for use from the main thread.
EnvLookup ProcessEnvironment();

// `home`/.fleetwatch/config.yml
std::filesystem::path ConfigFilePath(const std::filesystem::path& home);

// The config file path under $HOME; FailedPrecondition when HOME is unset or empty.
Result<std::filesystem::path> ConfigFilePathFromEnv(const EnvLookup& env);

// Reads the config file. A missing file sets nothing; a file that is not a YAML mapping of
// scalars is InvalidArgument naming the file. Values are returned as written (not validated).
Result<SettingValues> ReadConfigFile(const std::filesystem::path& path);

// Sets the given values in the config file, keeping every other key in it. The directory is
// created with mode 0700 when missing; the file is written to a temporary file (mode 0600) in the
// same directory and renamed over the old one, so readers see the old or the new file, never a
// part. A present file that does not parse is left alone (InvalidArgument).
Status UpdateConfigFile(const std::filesystem::path& path, const SettingValues& updates);

// Picks each value by precedence flag > environment > config file (empty values count as unset),
// defaults the project to "main", and validates all three; for an https URL also reads and
// checks the CA certificate file. The file is read only when a flag or variable leaves something
// unset (the CA certificate counts only for https). FailedPrecondition, with a hint to run
// `fleetwatch config`, when no url or token is configured; InvalidArgument for a bad value (naming
// where it came from).
Result<ClientSettings> ResolveClientSettings(const SettingValues& flags, const EnvLookup& env);

// "http[s]://host[:port]" with an optional trailing '/' → the URL without it; InvalidArgument
// otherwise (other schemes, user info, paths, queries, bad ports).
Result<std::string> NormalizeServerUrl(std::string_view url);

// The PEM certificates in `file`, checked (ValidateCertificatesPem); InvalidArgument naming the
// file when it cannot be read or holds no valid certificate.
Result<std::string> ReadCaCertificates(const std::filesystem::path& file);

// Tokens travel in an HTTP header: InvalidArgument unless non-empty printable ASCII, no spaces.
Status ValidateToken(std::string_view token);

// The first 4 characters of the token followed by "…" ("…" alone for tokens of 4 or fewer), so
// that it can be shown without being given away.
std::string MaskToken(std::string_view token);

}  // namespace fleetwatch::cli
