#include "exposition_checker.h"

#include <set>

namespace fleetwatch::expose::testing {

namespace {

bool NameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

// Reads `name{labels} value[ ts]`; returns the name or "" when malformed.
std::string ReadSample(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && NameChar(line[i], i == 0)) ++i;
  if (i == 0) return "";
  std::string name(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') break;
      const size_t start = i;
      while (i < line.size() && NameChar(line[i], i == start) && line[i] != ':') ++i;
      if (i == start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return "";
      i += 2;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size()) return "";
          const char e = line[i + 1];
          if (e != '\\' && e != '"' && e != 'n') return "";
          ++i;
        }
        ++i;
      }
      if (i >= line.size()) return "";
      ++i;  // closing quote
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i >= line.size() || line[i] != '}') return "";
    }
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return "";
  const std::string_view rest = line.substr(i + 1);
  const size_t space = rest.find(' ');
  const std::string_view value = rest.substr(0, space);
  if (value.empty() || value.find_first_not_of("0123456789.e+-naif") != std::string_view::npos) {
    return "";
  }
  if (space != std::string_view::npos) {
    const std::string_view ts = rest.substr(space + 1);
    if (ts.empty() || ts.find_first_not_of("0123456789.-") != std::string_view::npos) return "";
  }
  return name;
}

}  // namespace

CheckedExposition CheckExposition(std::string_view text, Format format) {
  CheckedExposition result;
  std::set<std::string> seen;
  std::string family;  // headed last
  std::string type;
  bool typed = false;
  bool eof = false;
  size_t line_no = 0;
  const auto fail = [&](const std::string& why) {
    result.error = "line " + std::to_string(line_no) + ": " + why;
    return result;
  };
  if (!text.empty() && text.back() != '\n') return fail("no final newline");
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (eof) return fail("text after # EOF");
    if (line == "# EOF") {
      if (format != Format::kOpenMetrics100) return fail("# EOF in text 0.0.4");
      eof = true;
      continue;
    }
    if (line.starts_with("# HELP ")) {
      const std::string_view rest = line.substr(7);
      const std::string name(rest.substr(0, rest.find(' ')));
      if (!seen.insert(name).second) return fail("second HELP for " + name);
      if (!family.empty() && !typed) return fail("family " + family + " without TYPE");
      family = name;
      typed = false;
      result.families.push_back(name);
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const std::string_view rest = line.substr(7);
      const size_t space = rest.find(' ');
      if (space == std::string_view::npos || rest.substr(0, space) != family || typed) {
        return fail("TYPE not right after the family's HELP");
      }
      type = std::string(rest.substr(space + 1));
      typed = true;
      continue;
    }
    if (line.starts_with("#") || line.empty()) return fail("unexpected line");
    const std::string name = ReadSample(line);
    if (name.empty()) return fail("malformed sample: " + std::string(line.substr(0, 200)));
    if (!typed) return fail("sample before TYPE");
    bool belongs = name == family;
    if (type == "counter" && format == Format::kOpenMetrics100) belongs = name == family + "_total";
    if (type == "histogram" || type == "summary") {
      belongs = belongs || name == family + "_sum" || name == family + "_count" ||
                (type == "histogram" && name == family + "_bucket");
    }
    if (!belongs) return fail("sample " + name + " outside its family " + family);
    ++result.samples;
  }
  if (format == Format::kOpenMetrics100 && !eof) return fail("no # EOF");
  return result;
}

}  // namespace fleetwatch::expose::testing
