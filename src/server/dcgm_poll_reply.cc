#include "server/dcgm_poll_reply.h"

#include <charconv>
#include <cstddef>
#include <optional>
#include <system_error>
#include <utility>

namespace fleetwatch::server {
namespace {

// As the DCGM parser's own cap (expose::DcgmParseLimits::max_bytes) and the `text` field's.
constexpr size_t kMaxDcgmTextBytes = 4 << 20;

Status Bad(std::string what) { return InvalidArgument("bad agent reply: " + std::move(what)); }

// The header's value, when the reply has it (names arrive lowercased).
std::optional<std::string_view> TextBytesHeader(const http::Response& reply) {
  for (const auto& [name, value] : reply.headers) {
    if (name.size() != kDcgmTextBytesHeader.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      char c = kDcgmTextBytesHeader[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      same = name[i] == c;
    }
    if (same) return value;
  }
  return std::nullopt;
}

}  // namespace

Result<AgentPoll> ParsePollReply(http::Response& reply) {
  AgentPollParser parser;
  return ParsePollReply(reply, parser);
}

Result<AgentPoll> ParsePollReply(http::Response& reply, AgentPollParser& parser) {
  const std::optional<std::string_view> header = TextBytesHeader(reply);
  if (!header) return parser.Parse(reply.body);
  size_t text_bytes = 0;
  const auto [end, ec] =
      std::from_chars(header->data(), header->data() + header->size(), text_bytes);
  if (header->empty() || ec != std::errc() || end != header->data() + header->size() ||
      text_bytes > reply.body.size()) {
    return Bad(std::string(kDcgmTextBytesHeader) +
               " must be the length of the DCGM text at the "
               "end of the body");
  }
  const size_t json_bytes = reply.body.size() - text_bytes;
  FW_ASSIGN_OR_RETURN(AgentPoll poll,
                      parser.Parse(std::string_view(reply.body).substr(0, json_bytes)));
  if (!poll.dcgm || !poll.dcgm->error.empty() || !poll.dcgm->text.empty()) {
    return Bad(
        "DCGM text after a reply whose 'dcgm' field is not {\"collected_at\": T, "
        "\"text\": \"\"}");
  }
  if (text_bytes > kMaxDcgmTextBytes) {
    poll.dcgm->error = "bad agent reply: the DCGM text is too long";
    return poll;
  }
  // The text moves to the front of the body, which becomes the poll's: no second copy.
  reply.body.erase(0, json_bytes);
  poll.dcgm->text = std::move(reply.body);
  return poll;
}

}  // namespace fleetwatch::server
