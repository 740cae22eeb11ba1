#include "integration/api_client.h"

#include <gtest/gtest.h>

#include "support/process.h"

namespace fleetwatch::testing {

std::string Str(const boost::json::value& v, std::string_view key) {
  const boost::json::value* field = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return field != nullptr && field->is_string() ? std::string(field->as_string()) : "";
}

std::string ApiReply::ErrorCode() const {
  if (!json.is_object()) return "";
  const auto* error = json.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) return "";
  const auto* code = error->as_object().if_contains("code");
  return code != nullptr && code->is_string() ? std::string(code->as_string()) : "";
}

std::string ApiReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

ApiReply ApiClient::Send(std::string_view method, std::string_view target, std::string_view body,
                         std::string_view content_type) const {
  Result<http::Client> client = http::Client::Create(url_, options_);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return {};
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token_.empty()) headers.emplace_back("Authorization", "Bearer " + token_);
  if (!content_type.empty()) headers.emplace_back("Content-Type", std::string(content_type));
  Result<http::Response> response = client->Send(method, target, body, headers);
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  if (!response.ok()) return {};
  ApiReply reply{response->status, response->body, nullptr, std::move(response->headers)};
  boost::json::error_code ec;
  reply.json = boost::json::parse(reply.body, ec);
  if (ec) reply.json = nullptr;
  return reply;
}

ApiReply WaitForRunStatus(const ApiClient& client, std::string_view project, std::string_view run,
                          std::string_view status, std::chrono::milliseconds timeout) {
  const std::string path = "/api/project/" + std::string(project) + "/runs/" + std::string(run);
  ApiReply last;
  WaitUntil(
      [&] {
        last = client.Get(path);
        return Str(last.json, "status") == status;
      },
      timeout);
  return last;
}

}  // namespace fleetwatch::testing
