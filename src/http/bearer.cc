#include "http/bearer.h"

namespace fleetwatch::http {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<std::string_view> ParseBearer(std::string_view authorization) {
  while (!authorization.empty() && IsBlank(authorization.front())) authorization.remove_prefix(1);
  while (!authorization.empty() && IsBlank(authorization.back())) authorization.remove_suffix(1);
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kScheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view token = authorization.substr(kScheme.size());
  if (token.front() != ' ') return std::nullopt;  // "Bearerx", or a tab instead of the space
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty()) return std::nullopt;
  for (char c : token) {
    if (c <= ' ' || c > '~') return std::nullopt;
  }
  return token;
}

}  // namespace fleetwatch::http
