#include "model/gpu_names.h"

#include <array>
#include <cctype>
#include <utility>

namespace fleetwatch::model {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWordChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
char Upper(char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = text.find(from, at)) != std::string::npos) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
}

std::string WithoutSpaces(std::string text) {
  std::erase(text, ' ');
  return text;
}

// Each case-insensitive "super", with the one space before it if any, becomes "SUPER".
std::string JoinSuper(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool spaced = text[i] == ' ';
    size_t word = spaced ? i + 1 : i;
    bool super = word + 5 <= text.size();
    for (size_t k = 0; super && k < 5; ++k) super = Upper(text[word + k]) == "SUPER"[k];
    if (super) {
      out += "SUPER";
      i = word + 5;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// The first run of `letters` followed by one or more digits, then word characters while
// `word_tail` (else only the digits): the model ("A100" of "A100-SXM4-80GB").
std::string FirstModel(const std::string& text, std::string_view letters, bool word_tail) {
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (letters.find(text[i]) == std::string_view::npos || !IsDigit(text[i + 1])) continue;
    size_t end = i + 1;
    while (end < text.size() && (word_tail ? IsWordChar(text[end]) : IsDigit(text[end]))) ++end;
    return text.substr(i, end - i);
  }
  return {};
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (Upper(text[i]) != Upper(prefix[i])) return false;
  }
  return true;
}

}  // namespace

std::string ShortNvidiaGpuName(std::string_view raw) {
  std::string name(raw);
  for (std::string_view brand : {"NVIDIA ", "Tesla ", "Quadro ", "GeForce "}) {
    ReplaceAll(name, brand, "");
  }
  if (name.find("GH200") != std::string::npos) return "GH200";
  if (name.find("RTX A") != std::string::npos) {
    ReplaceAll(name, "RTX A", "A");
    std::string model = FirstModel(name, "A", /*word_tail=*/false);
    return model.empty() ? WithoutSpaces(name) : model;
  }
  ReplaceAll(name, " Ti", "Ti");
  name = JoinSuper(name);
  ReplaceAll(name, " NVL", "NVL");
  ReplaceAll(name, " Ada Generation", "Ada");
  ReplaceAll(name, "RTX ", "RTX");
  std::string model = FirstModel(name, "AHLPTV", /*word_tail=*/true);
  return model.empty() ? WithoutSpaces(name) : model;
}

std::string ShortAmdGpuName(std::string_view name) {
  // [AMD ][Instinct ]MI<1-3 digits>[letter][-suffix], then a space or the end.
  std::string_view rest = name;
  if (StartsWithIgnoreCase(rest, "AMD ")) rest.remove_prefix(4);
  if (StartsWithIgnoreCase(rest, "Instinct ")) rest.remove_prefix(9);
  if (!StartsWithIgnoreCase(rest, "MI")) return std::string(name);
  size_t end = 2;
  while (end < rest.size() && IsDigit(rest[end])) ++end;
  if (end == 2 || end > 5) return std::string(name);
  if (end < rest.size() && std::isalpha(static_cast<unsigned char>(rest[end]))) ++end;
  if (end + 1 < rest.size() && rest[end] == '-' && IsWordChar(rest[end + 1])) {
    ++end;
    while (end < rest.size() && IsWordChar(rest[end])) ++end;
  }
  if (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) {
    return std::string(name);
  }
  std::string model(rest.substr(0, end));
  return model == "MI300X-O" ? "MI300X" : model;
}

std::string ShortIntelAcceleratorName(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kGaudi = {{
      {"HL-205", "Gaudi"},
      {"HL-225", "Gaudi2"},
      {"HL-325", "Gaudi3"},  // OAM
      {"HL-338", "Gaudi3"},  // PCIe
  }};
  for (const auto& [model, market] : kGaudi) {
    if (name.starts_with(model)) return std::string(market);
  }
  return std::string(name);
}

std::string ShortGpuName(std::string_view vendor, std::string_view name) {
  if (vendor == "nvidia") return ShortNvidiaGpuName(name);
  if (vendor == "amd") return ShortAmdGpuName(name);
  if (vendor == "intel") return ShortIntelAcceleratorName(name);
  return std::string(name);
}

}  // namespace fleetwatch::model
