#include "store/postgres_query.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "util/status.h"

namespace fleetwatch::store::postgres {
namespace {

std::string Trimmed(const char* message) {
  std::string out = message != nullptr ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

Status PgError(PGconn* conn, const PGresult* result) {
  const char* field = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = field != nullptr ? field : "";
  std::string message =
      Trimmed(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn));
  if (message.empty()) message = Trimmed(PQerrorMessage(conn));
  if (state == "23505") return AlreadyExists(std::move(message));
  if (state == "23503") return NotFound("a referenced row does not exist: " + message);
  if (state == "40001" || state == "40P01" || state == "55P03") {
    return Unavailable("database is busy (" + state + "): " + message);
  }
  if (state.starts_with("08") || state.starts_with("57P") || PQstatus(conn) != CONNECTION_OK) {
    return Unavailable("database connection failed: " + message);
  }
  if (state == "22021" || state == "22P05") {
    return InvalidArgument("text the database cannot store: " + message);
  }
  return Internal("database error" + (state.empty() ? "" : " (" + state + ")") + ": " + message);
}

bool IsRetryable(const Status& status) {
  return status.code() == StatusCode::kUnavailable &&
         (status.message().find("(40001)") != std::string::npos ||
          status.message().find("(40P01)") != std::string::npos);
}

std::string Numbered(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 1;
  char quote = 0;
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;  // a doubled quote re-opens at once: same result
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      out += '$';
      out += std::to_string(next++);
    } else {
      out += c;
    }
  }
  return out;
}

Status ExecSimple(PGconn* conn, const char* sql) {
  ResultHandle result(PQexec(conn, sql));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return PgError(conn, result.get());
  }
  return Status::Ok();
}

Status PrepareStatement(PGconn* conn, const std::string& name,
                        std::string_view sql_with_question_marks) {
  const std::string sql = Numbered(sql_with_question_marks);
  ResultHandle result(PQprepare(conn, name.c_str(), sql.c_str(), 0, nullptr));
  if (PQresultStatus(result.get()) != PGRES_COMMAND_OK) return PgError(conn, result.get());
  return Status::Ok();
}

Query::Query(PGconn* conn, std::string_view sql_with_question_marks)
    : conn_(conn), sql_(Numbered(sql_with_question_marks)) {}

Query Query::OfPrepared(PGconn* conn, std::string statement_name) {
  return Query(conn, std::move(statement_name), /*prepared=*/true);
}

Query& Query::Bind(std::string_view text) {
  if (text.find('\0') != std::string_view::npos && bind_error_.ok()) {
    bind_error_ = InvalidArgument("text with a NUL byte cannot be stored in PostgreSQL");
  }
  params_.emplace_back(std::string(text));
  formats_.push_back(0);
  return *this;
}

Query& Query::BindBytes(std::string_view bytes) {
  params_.emplace_back(std::string(bytes));
  formats_.push_back(1);
  return *this;
}

Query& Query::Bind(int64_t value) {
  params_.emplace_back(std::to_string(value));
  formats_.push_back(0);
  return *this;
}

Query& Query::Bind(double value) {
  char buffer[64];
  // Shortest text that reads back as the same double.
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc() && bind_error_.ok()) bind_error_ = InvalidArgument("unprintable number");
  params_.emplace_back(std::string(buffer, ec == std::errc() ? end : buffer));
  formats_.push_back(0);
  return *this;
}

Query& Query::BindNull() {
  params_.emplace_back(std::nullopt);
  formats_.push_back(0);
  return *this;
}

Status Query::Run() {
  FW_RETURN_IF_ERROR(bind_error_);
  std::vector<const char*> values;
  std::vector<int> lengths;  // read by libpq for binary parameters only
  values.reserve(params_.size());
  lengths.reserve(params_.size());
  for (const std::optional<std::string>& param : params_) {
    values.push_back(param.has_value() ? param->c_str() : nullptr);
    lengths.push_back(param.has_value() ? static_cast<int>(param->size()) : 0);
  }
  const int count = static_cast<int>(values.size());
  result_.reset(prepared_ ? PQexecPrepared(conn_, sql_.c_str(), count, values.data(),
                                           lengths.data(), formats_.data(),
                                           /*resultFormat=text*/ 0)
                          : PQexecParams(conn_, sql_.c_str(), count, nullptr, values.data(),
                                         lengths.data(), formats_.data(), /*resultFormat=text*/ 0));
  const ExecStatusType status = PQresultStatus(result_.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    Status error = PgError(conn_, result_.get());
    result_.reset();
    return error;
  }
  return Status::Ok();
}

Result<bool> Query::Step() {
  if (result_ == nullptr) FW_RETURN_IF_ERROR(Run());
  ++row_;
  return row_ < PQntuples(result_.get());
}

Status Query::Exec() {
  if (result_ == nullptr) return Run();
  return Status::Ok();
}

int Query::Changes() const {
  if (result_ == nullptr) return 0;
  const char* tuples = PQcmdTuples(result_.get());
  int n = 0;
  std::from_chars(tuples, tuples + std::char_traits<char>::length(tuples), n);
  return n;
}

bool Query::IsNull(int col) const { return PQgetisnull(result_.get(), row_, col) != 0; }

std::string Query::Text(int col) const {
  return std::string(PQgetvalue(result_.get(), row_, col),
                     static_cast<size_t>(PQgetlength(result_.get(), row_, col)));
}

std::string Query::Bytes(int col) const {
  // Text-format results carry BYTEA escaped (hex, or the older escape format): libpq decodes both.
  size_t size = 0;
  unsigned char* raw = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row_, col)), &size);
  if (raw == nullptr) throw std::bad_alloc();  // as a std::string that cannot allocate
  std::string out(reinterpret_cast<const char*>(raw), size);
  PQfreemem(raw);
  return out;
}

int64_t Query::Int64(int col) const {
  const char* text = PQgetvalue(result_.get(), row_, col);
  int64_t value = 0;
  std::from_chars(text, text + PQgetlength(result_.get(), row_, col), value);
  return value;
}

double Query::Double(int col) const {
  const char* text = PQgetvalue(result_.get(), row_, col);
  double value = 0;
  std::from_chars(text, text + PQgetlength(result_.get(), row_, col), value);
  return value;
}

std::optional<std::string> Query::OptionalText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}

std::optional<int64_t> Query::OptionalInt64(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int64(col);
}

std::optional<int> Query::OptionalInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}

std::optional<double> Query::OptionalDouble(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Double(col);
}

Transaction::~Transaction() {
  if (open_ && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    ResultHandle result(PQexec(conn_, "ROLLBACK"));
  }
}

Status Transaction::Begin(bool write) {
  FW_RETURN_IF_ERROR(ExecSimple(conn_, write ? "BEGIN ISOLATION LEVEL SERIALIZABLE"
                                             : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  open_ = true;
  return Status::Ok();
}

Status Transaction::Commit() {
  FW_RETURN_IF_ERROR(ExecSimple(conn_, "COMMIT"));
  open_ = false;
  return Status::Ok();
}

}  // namespace fleetwatch::store::postgres
