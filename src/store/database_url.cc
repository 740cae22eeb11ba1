#include "store/database_url.h"

#include <cctype>
#include <string>
#include <vector>

namespace fleetwatch::store {
namespace {

constexpr std::string_view kRedacted = "***";

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

// Where the passwords of `url` are: [begin, end) ranges, in order.
std::vector<std::pair<size_t, size_t>> PasswordRanges(std::string_view url) {
  std::vector<std::pair<size_t, size_t>> ranges;
  const size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    const size_t authority = scheme + 3;
    const size_t authority_end = url.find_first_of("/?#", authority);
    const std::string_view auth =
        url.substr(authority, authority_end == std::string_view::npos ? std::string_view::npos
                                                                      : authority_end - authority);
    const size_t at = auth.rfind('@');
    if (at != std::string_view::npos) {
      const size_t colon = auth.substr(0, at).find(':');
      if (colon != std::string_view::npos) {
        ranges.emplace_back(authority + colon + 1, authority + at);
      }
    }
  }
  const size_t query = url.find('?');
  if (query != std::string_view::npos) {
    size_t pos = query + 1;
    while (pos < url.size()) {
      size_t end = url.find('&', pos);
      if (end == std::string_view::npos) end = url.size();
      const std::string_view param = url.substr(pos, end - pos);
      if (StartsWithNoCase(param, "password=")) ranges.emplace_back(pos + 9, end);
      pos = end + 1;
    }
  }
  return ranges;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

void ReplaceAll(std::string& text, const std::string& needle) {
  if (needle.empty()) return;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + kRedacted.size())) {
    text.replace(pos, needle.size(), kRedacted);
  }
}

}  // namespace

Status CheckPostgresUrl(std::string_view url) {
  if (StartsWithNoCase(url, "postgresql://") || StartsWithNoCase(url, "postgres://")) {
    return Status::Ok();
  }
  // A key=value string may hold a password anywhere: only a URL is echoed, redacted.
  const std::string given = url.find("://") == std::string_view::npos
                                ? std::string("a value that is not a URL")
                                : "'" + RedactDatabaseUrl(url) + "'";
  return InvalidArgument(
      "FLEETWATCH_DATABASE_URL (--database-url) must be a PostgreSQL URL "
      "(postgresql://user:password@host:port/database), not " +
      given + "; leave it unset for the embedded SQLite database");
}

std::string RedactDatabaseUrl(std::string_view url) {
  std::string out(url);
  const auto ranges = PasswordRanges(url);
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    out.replace(it->first, it->second - it->first, kRedacted);
  }
  return out;
}

std::string RedactPassword(std::string text, std::string_view url) {
  for (const auto& [begin, end] : PasswordRanges(url)) {
    const std::string raw(url.substr(begin, end - begin));
    ReplaceAll(text, raw);
    ReplaceAll(text, PercentDecode(raw));
  }
  return text;
}

}  // namespace fleetwatch::store
