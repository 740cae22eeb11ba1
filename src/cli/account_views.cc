#include "cli/account_views.h"

#include <boost/json.hpp>

#include "cli/display_format.h"
#include "cli/json_fields.h"

namespace fleetwatch::cli {

Table ProjectsTable(const boost::json::array& projects, TimeMicros now) {
  Table table;
  table.headers = {"name", "owner", "members", "created"};
  for (const boost::json::value& project : projects) {
    std::string members;
    for (const boost::json::value& member : ArrayField(project, "members")) {
      if (!members.empty()) members += ", ";
      members += StringField(member, "user_name");
      std::string role = StringField(member, "project_role");
      if (!role.empty()) members += " (" + role + ")";
    }
    table.rows.push_back({StringField(project, "name"), StringField(project, "owner"),
                          members.empty() ? "-" : members,
                          FormatAge(StringField(project, "created_at"), now)});
  }
  return table;
}

Table UsersTable(const boost::json::array& users, TimeMicros now) {
  Table table;
  table.headers = {"name", "role", "created"};
  for (const boost::json::value& user : users) {
    table.rows.push_back({StringField(user, "name"), StringField(user, "global_role"),
                          FormatAge(StringField(user, "created_at"), now)});
  }
  return table;
}

}  // namespace fleetwatch::cli
