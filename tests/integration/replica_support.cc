#include "integration/replica_support.h"

#include <libpq-fe.h>

namespace fleetwatch::testing {

std::vector<std::string> QueryColumn(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::vector<std::string> out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* result = PQexec(conn, sql.c_str());
    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(result); ++i) out.emplace_back(PQgetvalue(result, i, 0));
    }
    PQclear(result);
  }
  PQfinish(conn);
  return out;
}

double QueryNumber(const std::string& url, const std::string& sql) {
  std::vector<std::string> v = QueryColumn(url, sql);
  return v.size() == 1 && !v[0].empty() ? std::stod(v[0]) : -1.0;
}

int64_t JsonInt(const boost::json::value& v, std::string_view key) {
  const boost::json::value* field = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (field == nullptr || !field->is_number()) return -1;
  boost::json::error_code ec;
  int64_t n = field->to_number<int64_t>(ec);
  return ec ? -1 : n;
}

}  // namespace fleetwatch::testing
