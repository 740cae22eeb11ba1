#include "server/acknowledgements.h"

#include <memory>
#include <utility>

#include "http/message.h"
#include "server/agent_protocol.h"

namespace fleetwatch::server {
namespace {

// One acknowledgement in progress; kept alive by the callbacks of its requests.
struct Chain : std::enable_shared_from_this<Chain> {
  Chain(LogCopies c, http::AsyncRequest r, std::string id)
      : copies(std::move(c)), base(std::move(r)), job_id(std::move(id)) {}

  LogCopies copies;
  http::AsyncRequest base;
  std::string job_id;
  std::unique_ptr<LogCopy> copy;
  AgentSend send;
  std::function<void(Result<http::Response>)> done;

  http::AsyncRequest Request(std::string method, std::string target) const {
    http::AsyncRequest r = base;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body.clear();
    return r;
  }

  void Fail(const Status& s) {
    done(Unavailable("copy the log of " + job_id + ": " + s.message()));
  }

  // Asks for the next piece, or commits the copy and acknowledges.
  void Step() {
    if (std::optional<LogCopy::Piece> piece = copy->Next()) {
      const int64_t offset = piece->offset;
      const int64_t limit = piece->limit;
      send(Request("GET", "/api/jobs/" + http::UrlEncode(job_id) + "/logs?offset=" +
                              std::to_string(offset) + "&limit=" + std::to_string(limit)),
           [self = shared_from_this(), offset, limit](Result<http::Response> reply) {
             self->Piece(std::move(reply), offset, limit);
           });
      return;
    }
    if (Status s = copy->Commit(); !s.ok()) return Fail(s);
    send(Request("DELETE", "/api/jobs/" + http::UrlEncode(job_id)),
         [self = shared_from_this()](Result<http::Response> reply) {
           self->done(std::move(reply));
         });
  }

  void Piece(Result<http::Response> reply, int64_t offset, int64_t limit) {
    Result<LogChunk> chunk = Unavailable("no reply");
    if (!reply.ok()) {
      chunk = reply.status();
    } else if (reply->status == 404) {
      chunk = NotFound("the agent has no job " + job_id);
    } else if (reply->status != 200) {
      chunk = Unavailable("the agent answered HTTP " + std::to_string(reply->status));
    } else {
      std::string_view log_size;
      for (const auto& [name, value] : reply->headers) {
        if (name == "x-log-size") log_size = value;
      }
      chunk = ParseAgentLogChunk(std::move(reply->body), log_size, offset, limit);
    }
    if (Status s = copy->Feed(std::move(chunk)); !s.ok()) return Fail(s);
    Step();
  }
};

}  // namespace

AgentOperation CopyLogThenAcknowledge(LogCopies copies, http::AsyncRequest request,
                                      std::string job_id) {
  return [copies = std::move(copies), request = std::move(request), job_id = std::move(job_id)](
             const AgentSend& send, std::function<void(Result<http::Response>)> done) {
    auto chain = std::make_shared<Chain>(copies, request, job_id);
    chain->send = send;
    chain->done = std::move(done);
    Result<std::unique_ptr<LogCopy>> copy = copies.Begin(job_id);
    if (!copy.ok()) return chain->Fail(copy.status());
    chain->copy = std::move(copy).value();
    chain->Step();
  };
}

}  // namespace fleetwatch::server
