#include "model/run_spec.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "model/config_fields.h"
#include "model/config_tree.h"
#include "model/json_writer.h"
#include "model/names.h"

// Sizes: MB/GB/TB mean MiB/GiB/TiB, as in dstack, and every size is rounded to a whole MiB
// (nearest). A cgroup limit needs no finer grain, and it lets ToJson write "<N>MB" exactly, so
// that the normalized JSON parses back to the same configuration.

namespace fleetwatch::model {
namespace {

using config::Error;
using config::Find;
using config::GotSuffix;
using config::IndexPath;
using config::KeyPath;
using config::UnsupportedKey;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kMaxMemoryMiB = int64_t{64} << 20;  // 64 TiB
constexpr int64_t kMiBPerGiB = 1024;
constexpr int64_t kMaxMemoryGiB = kMaxMemoryMiB / kMiBPerGiB;
constexpr int kMaxFractionDigits = 9;

constexpr int64_t kMinute = 60;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kMaxRunDuration = 365 * kDay;
// ParseDurationSeconds refuses anything longer than this, well inside int64 arithmetic.
constexpr int64_t kMaxParsedDuration = 100 * 366 * kDay;

constexpr int kMaxGpuCount = 64;
constexpr int kMaxCpus = 4096;
constexpr int kMaxNodes = 1000;
constexpr int kMaxReplicas = 100;
constexpr std::size_t kMaxCommands = 1000;
constexpr std::size_t kMaxCommandBytes = 64 * 1024;
constexpr std::size_t kMaxEnvVars = 1000;
constexpr std::size_t kMaxEnvNameBytes = 256;
constexpr std::size_t kMaxEnvValueBytes = 64 * 1024;
constexpr std::size_t kMaxWorkingDirBytes = 4096;

constexpr std::string_view kSizeHint =
    "must be a size like \"16GB\" (a number with unit MB, GB, TB, MiB, GiB or TiB; GB means GiB)";
constexpr std::string_view kSizeTooLarge = "is too large (at most 64TB)";
constexpr std::string_view kSizeTooSmall = "is too small (at least 1MB)";
constexpr std::string_view kDurationHint =
    "must be a duration like \"2h\", \"30m\", \"45s\", \"1d\" or \"1h30m\"";
constexpr std::string_view kGpuSpecHint =
    "must be a GPU spec like \"2\", \"A100\", \"A100:2\", \"A100:80GB:2\" or \"80GB:2\"";

constexpr std::string_view kNotInProcessRuntime =
    "is not supported by the process runtime (commands run directly on the host, not in a "
    "container)";
constexpr std::string_view kNotSupported = "is not supported by the process runtime";

constexpr UnsupportedKey kUnsupportedRunKeys[] = {
    {"image", kNotInProcessRuntime},
    {"docker", kNotInProcessRuntime},
    {"python", kNotInProcessRuntime},
    {"nvcc", kNotInProcessRuntime},
    {"registry_auth", kNotInProcessRuntime},
    {"privileged", kNotInProcessRuntime},
    {"entrypoint", kNotInProcessRuntime},
    {"user", kNotInProcessRuntime},
    {"shell", kNotInProcessRuntime},
    {"home_dir", kNotInProcessRuntime},
    {"volumes", kNotSupported},
    {"ide", kNotSupported},
    {"version", kNotSupported},
    {"setup", kNotSupported},
    {"ports", kNotSupported},
    {"repos", kNotSupported},
    {"files", kNotSupported},
    {"backends", kNotSupported},
    {"regions", kNotSupported},
    {"availability_zones", kNotSupported},
    {"instance_types", kNotSupported},
    {"reservation", kNotSupported},
    {"spot_policy", kNotSupported},
    {"max_price", kNotSupported},
    {"creation_policy", kNotSupported},
    {"idle_duration", kNotSupported},
    {"termination_policy", kNotSupported},
    {"termination_idle_time", kNotSupported},
    {"inactivity_duration", kNotSupported},
    {"stop_duration", kNotSupported},
    {"stop_criteria", kNotSupported},
    {"startup_order", kNotSupported},
    {"schedule", kNotSupported},
    {"priority", kNotSupported},
    {"fleets", kNotSupported},
    {"tags", kNotSupported},
    {"retry", kNotSupported},
    {"gateway", kNotSupported},
    {"scaling", kNotSupported},
    {"model", kNotSupported},
    {"auth", kNotSupported},
    {"https", kNotSupported},
    {"rate_limits", kNotSupported},
    {"probes", kNotSupported},
    {"strip_prefix", kNotSupported},
    {"single_branch", kNotSupported},
};

constexpr UnsupportedKey kUnsupportedResourceKeys[] = {
    {"disk", "is not supported by the process runtime (jobs use the host's disk)"},
    {"shm_size", kNotInProcessRuntime},
};

constexpr UnsupportedKey kUnsupportedGpuKeys[] = {
    {"vendor", "is not supported (GPUs are matched by name and memory)"},
    {"total_memory", "is not supported (use memory: the memory of each GPU)"},
    {"compute_capability", "is not supported (GPUs are matched by name and memory)"},
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// ---- sizes ------------------------------------------------------------------------------------

enum class SizeError { kNone, kSyntax, kTooLarge, kTooSmall };

// Parses "<digits>[.<digits>]<unit>" into MiB. `unit_required` is for GPU specs, where a bare
// number is a count.
SizeError ParseSizeMiB(std::string_view text, bool unit_required, int64_t& mib) {
  if (text.empty() || text.size() > 64 || !IsDigit(text[0])) return SizeError::kSyntax;
  std::size_t i = 0;
  int64_t whole = 0;
  bool whole_too_large = false;
  while (i < text.size() && IsDigit(text[i])) {
    if (whole <= kMaxMemoryMiB) whole = whole * 10 + (text[i] - '0');  // no overflow: < 2^31
    whole_too_large = whole_too_large || whole > kMaxMemoryMiB;
    ++i;
  }
  int64_t fraction = 0;
  int64_t scale = 1;  // 10^(fraction digits)
  if (i < text.size() && text[i] == '.') {
    ++i;
    int digits = 0;
    while (i < text.size() && IsDigit(text[i])) {
      if (++digits > kMaxFractionDigits) return SizeError::kSyntax;
      fraction = fraction * 10 + (text[i] - '0');
      scale *= 10;
      ++i;
    }
    if (digits == 0) return SizeError::kSyntax;
  }
  std::string_view unit = text.substr(i);
  int64_t unit_mib = 0;
  if (unit.empty()) {
    if (unit_required) return SizeError::kSyntax;
    unit_mib = kMiBPerGiB;  // a bare number is GB
  } else if (EqualsIgnoreCase(unit, "MB") || EqualsIgnoreCase(unit, "MiB")) {
    unit_mib = 1;
  } else if (EqualsIgnoreCase(unit, "GB") || EqualsIgnoreCase(unit, "GiB")) {
    unit_mib = kMiBPerGiB;
  } else if (EqualsIgnoreCase(unit, "TB") || EqualsIgnoreCase(unit, "TiB")) {
    unit_mib = kMiBPerGiB * kMiBPerGiB;
  } else {
    return SizeError::kSyntax;
  }
  // whole <= 2^26 and unit_mib <= 2^20, fraction < 10^9: every product fits easily.
  if (whole_too_large) return SizeError::kTooLarge;
  mib = whole * unit_mib + (fraction * unit_mib + scale / 2) / scale;
  if (mib > kMaxMemoryMiB) return SizeError::kTooLarge;
  if (mib < 1) return SizeError::kTooSmall;
  return SizeError::kNone;
}

std::string_view SizeErrorText(SizeError error) {
  switch (error) {
    case SizeError::kTooLarge:
      return kSizeTooLarge;
    case SizeError::kTooSmall:
      return kSizeTooSmall;
    default:
      return kSizeHint;
  }
}

// A size given as a YAML/JSON number (GB) or string. Errors name `path`.
Result<int64_t> ReadMemory(const boost::json::value& value, const std::string& path) {
  switch (value.kind()) {
    case boost::json::kind::string: {
      const boost::json::string& s = value.get_string();
      Result<int64_t> bytes = ParseMemorySize(std::string_view(s.data(), s.size()));
      if (!bytes.ok()) return Error(path, bytes.status().message());
      return bytes;
    }
    case boost::json::kind::int64: {
      int64_t gib = value.get_int64();
      if (gib > kMaxMemoryGiB) return Error(path, kSizeTooLarge);
      if (gib < 1) return Error(path, kSizeTooSmall);
      return gib * kMiBPerGiB * kMiB;
    }
    case boost::json::kind::uint64:
      return Error(path, kSizeTooLarge);
    case boost::json::kind::double_: {
      double gib = value.get_double();
      if (std::isnan(gib)) return Error(path, kSizeHint);
      if (gib > static_cast<double>(kMaxMemoryGiB)) return Error(path, kSizeTooLarge);
      if (gib < 0) return Error(path, kSizeTooSmall);  // also -inf, before llround sees it
      auto mib = static_cast<int64_t>(std::llround(gib * kMiBPerGiB));
      if (mib < 1) return Error(path, kSizeTooSmall);
      return mib * kMiB;
    }
    default:
      return Error(path, kSizeHint);
  }
}

// "16GB" when exact, else "<N>MB" (sizes from the parser are whole MiB; others are rounded up).
std::string FormatSize(int64_t bytes) {
  int64_t mib = bytes / kMiB + (bytes % kMiB != 0 ? 1 : 0);
  if (mib % (kMiBPerGiB * kMiBPerGiB) == 0) {
    return std::to_string(mib / (kMiBPerGiB * kMiBPerGiB)) + "TB";
  }
  if (mib % kMiBPerGiB == 0) return std::to_string(mib / kMiBPerGiB) + "GB";
  return std::to_string(mib) + "MB";
}

// ---- GPUs -------------------------------------------------------------------------------------

// ^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$
bool IsValidGpuName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && (i == 0 || (c != ' ' && c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

constexpr std::string_view kGpuNameHint =
    "GPU name must be letters, digits, spaces, '_', '.' or '-' (at most 64, starting with a "
    "letter or digit)";

std::string GpuCountRange(std::string_view digits) {
  return "GPU count must be between 0 and " + std::to_string(kMaxGpuCount) + GotSuffix(digits);
}

Status CheckGpuConsistency(const GpuRequest& gpu) {
  if (gpu.count == 0 && (gpu.name || gpu.memory_bytes)) {
    return InvalidArgument("a GPU name or memory needs a GPU count of at least 1");
  }
  return Status::Ok();
}

Result<GpuRequest> ReadGpu(const boost::json::value& value, const std::string& path) {
  switch (value.kind()) {
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: {
      FW_ASSIGN_OR_RETURN(int64_t count, config::ReadInteger(value, path, 0, kMaxGpuCount));
      GpuRequest gpu;
      gpu.count = static_cast<int>(count);
      return gpu;
    }
    case boost::json::kind::string: {
      const boost::json::string& s = value.get_string();
      Result<GpuRequest> gpu = ParseGpuSpec(std::string_view(s.data(), s.size()));
      if (!gpu.ok()) return Error(path, gpu.status().message());
      return gpu;
    }
    case boost::json::kind::object: {
      const boost::json::object& object = value.get_object();
      FW_RETURN_IF_ERROR(
          config::CheckKeys(object, path, {"name", "count", "memory"}, kUnsupportedGpuKeys));
      GpuRequest gpu;
      gpu.count = 1;
      if (const boost::json::value* name = Find(object, "name")) {
        std::string name_path = KeyPath(path, "name");
        FW_ASSIGN_OR_RETURN(std::string text, config::ReadString(*name, name_path));
        if (!IsValidGpuName(text)) return Error(name_path, kGpuNameHint);
        gpu.name = std::move(text);
      }
      if (const boost::json::value* count = Find(object, "count")) {
        FW_ASSIGN_OR_RETURN(int64_t n,
                            config::ReadInteger(*count, KeyPath(path, "count"), 0, kMaxGpuCount));
        gpu.count = static_cast<int>(n);
      }
      if (const boost::json::value* memory = Find(object, "memory")) {
        FW_ASSIGN_OR_RETURN(gpu.memory_bytes, ReadMemory(*memory, KeyPath(path, "memory")));
      }
      Status consistent = CheckGpuConsistency(gpu);
      if (!consistent.ok()) return Error(path, consistent.message());
      return gpu;
    }
    default:
      return Error(
          path, "must be a GPU count, a spec like \"A100:2\" or a mapping {name, count, memory}");
  }
}

// ---- durations --------------------------------------------------------------------------------

// A duration given as a number of seconds or a string, within [min, max] seconds.
Result<int64_t> ReadDuration(const boost::json::value& value, const std::string& path, int64_t min,
                             int64_t max, std::string_view range_text) {
  int64_t seconds = 0;
  if (value.is_string()) {
    const boost::json::string& s = value.get_string();
    Result<int64_t> parsed = ParseDurationSeconds(std::string_view(s.data(), s.size()));
    if (!parsed.ok()) return Error(path, parsed.status().message());
    seconds = *parsed;
  } else if (value.is_number()) {
    FW_ASSIGN_OR_RETURN(seconds,
                        config::ReadInteger(value, path, std::numeric_limits<int64_t>::min(),
                                            std::numeric_limits<int64_t>::max()));
  } else {
    return Error(path, std::string(kDurationHint) + " or a number of seconds");
  }
  if (seconds < min || seconds > max) return Error(path, range_text);
  return seconds;
}

// ---- the run configuration --------------------------------------------------------------------

Result<std::vector<std::string>> ReadCommands(const boost::json::value& value,
                                              const std::string& path) {
  FW_ASSIGN_OR_RETURN(const boost::json::array* array, config::ReadArray(value, path));
  if (array->size() > kMaxCommands) {
    return Error(path, "has too many commands (at most " + std::to_string(kMaxCommands) + ")");
  }
  std::vector<std::string> commands;
  commands.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    std::string item_path = IndexPath(path, i);
    FW_ASSIGN_OR_RETURN(std::string command, config::ReadString((*array)[i], item_path));
    if (command.empty()) return Error(item_path, "must not be empty");
    if (command.size() > kMaxCommandBytes) {
      return Error(item_path,
                   "is too long (at most " + std::to_string(kMaxCommandBytes) + " bytes)");
    }
    if (command.find('\0') != std::string::npos) {
      return Error(item_path, "must not contain NUL characters");
    }
    commands.push_back(std::move(command));
  }
  return commands;
}

bool IsValidEnvName(std::string_view name) {
  if (name.empty() || name.size() > kMaxEnvNameBytes) return false;
  if (IsDigit(name[0])) return false;
  for (char c : name) {
    bool ok = IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status CheckEnvVar(const std::vector<std::pair<std::string, std::string>>& env,
                   std::string_view name, std::string_view value, const std::string& path) {
  if (!IsValidEnvName(name)) {
    return Error(path,
                 "variable names must match ^[A-Za-z_][A-Za-z0-9_]*$, at most 256 characters" +
                     GotSuffix(name));
  }
  if (value.size() > kMaxEnvValueBytes) {
    return Error(path,
                 "value is too long (at most " + std::to_string(kMaxEnvValueBytes) + " bytes)");
  }
  if (value.find('\0') != std::string_view::npos) {
    return Error(path, "value must not contain NUL characters");
  }
  for (const auto& [existing, unused] : env) {
    if (existing == name) return Error("env", "duplicate variable" + GotSuffix(name));
  }
  return Status::Ok();
}

Result<std::vector<std::pair<std::string, std::string>>> ReadEnv(const boost::json::value& value) {
  std::vector<std::pair<std::string, std::string>> env;
  if (value.is_object()) {
    const boost::json::object& object = value.get_object();
    if (object.size() > kMaxEnvVars) {
      return Error("env", "has too many variables (at most " + std::to_string(kMaxEnvVars) + ")");
    }
    for (const auto& entry : object) {
      std::string_view name = entry.key();
      std::string path = KeyPath("env", name);
      const boost::json::value& v = entry.value();
      std::string text;
      switch (v.kind()) {
        case boost::json::kind::string:
          text.assign(v.get_string().data(), v.get_string().size());
          break;
        case boost::json::kind::int64:
          text = std::to_string(v.get_int64());
          break;
        case boost::json::kind::uint64:
          text = std::to_string(v.get_uint64());
          break;
        case boost::json::kind::double_:
          text = config::FormatDouble(v.get_double());
          break;
        case boost::json::kind::bool_:
          text = v.get_bool() ? "true" : "false";
          break;
        default:
          return Error(path, "must be a string, number or boolean (got " +
                                 std::string(config::KindName(v)) + ")");
      }
      FW_RETURN_IF_ERROR(CheckEnvVar(env, name, text, IsValidEnvName(name) ? path : "env"));
      env.emplace_back(std::string(name), std::move(text));
    }
    return env;
  }
  if (value.is_array()) {
    const boost::json::array& array = value.get_array();
    if (array.size() > kMaxEnvVars) {
      return Error("env", "has too many variables (at most " + std::to_string(kMaxEnvVars) + ")");
    }
    for (std::size_t i = 0; i < array.size(); ++i) {
      std::string path = IndexPath("env", i);
      FW_ASSIGN_OR_RETURN(std::string item, config::ReadString(array[i], path));
      std::size_t eq = item.find('=');
      if (eq == std::string::npos) return Error(path, "must look like NAME=VALUE");
      std::string name = item.substr(0, eq);
      std::string text = item.substr(eq + 1);
      FW_RETURN_IF_ERROR(CheckEnvVar(env, name, text, path));
      env.emplace_back(std::move(name), std::move(text));
    }
    return env;
  }
  return Error("env", "must be a mapping of NAME: value or a list of \"NAME=VALUE\" strings");
}

Result<int> ReadCpus(const boost::json::value& value) {
  constexpr std::string_view kPath = "resources.cpu";
  if (value.is_string()) {
    const boost::json::string& s = value.get_string();
    bool digits = !s.empty() && s.size() <= 9;
    for (char c : s) digits = digits && IsDigit(c);
    if (!digits) {
      return Error(kPath,
                   "must be a number of CPUs like 4 (ranges and architectures are not "
                   "supported)");
    }
    int64_t n = std::stoll(std::string(s.data(), s.size()));
    if (n < 1 || n > kMaxCpus) {
      return Error(kPath, "must be between 1 and " + std::to_string(kMaxCpus) + " (got " +
                              std::to_string(n) + ")");
    }
    return static_cast<int>(n);
  }
  FW_ASSIGN_OR_RETURN(int64_t n, config::ReadInteger(value, kPath, 1, kMaxCpus));
  return static_cast<int>(n);
}

Result<ResourcesRequest> ReadResources(const boost::json::value& value) {
  FW_ASSIGN_OR_RETURN(const boost::json::object* object, config::ReadObject(value, "resources"));
  FW_RETURN_IF_ERROR(
      config::CheckKeys(*object, "resources", {"cpu", "memory", "gpu"}, kUnsupportedResourceKeys));
  ResourcesRequest resources;
  if (const boost::json::value* cpu = Find(*object, "cpu")) {
    FW_ASSIGN_OR_RETURN(resources.cpus, ReadCpus(*cpu));
  }
  if (const boost::json::value* memory = Find(*object, "memory")) {
    FW_ASSIGN_OR_RETURN(resources.memory_bytes, ReadMemory(*memory, "resources.memory"));
  }
  if (const boost::json::value* gpu = Find(*object, "gpu")) {
    FW_ASSIGN_OR_RETURN(resources.gpu, ReadGpu(*gpu, "resources.gpu"));
  }
  return resources;
}

Result<UtilizationPolicy> ReadUtilizationPolicy(const boost::json::value& value) {
  constexpr std::string_view kPath = "utilization_policy";
  FW_ASSIGN_OR_RETURN(const boost::json::object* object, config::ReadObject(value, kPath));
  FW_RETURN_IF_ERROR(config::CheckKeys(*object, kPath, {"min_gpu_utilization", "time_window"}, {}));
  UtilizationPolicy policy;
  const boost::json::value* min = Find(*object, "min_gpu_utilization");
  if (min == nullptr) return Error("utilization_policy.min_gpu_utilization", "is required");
  FW_ASSIGN_OR_RETURN(int64_t percent,
                      config::ReadInteger(*min, "utilization_policy.min_gpu_utilization", 0, 100));
  policy.min_gpu_utilization = static_cast<int>(percent);
  const boost::json::value* window = Find(*object, "time_window");
  if (window == nullptr) return Error("utilization_policy.time_window", "is required");
  FW_ASSIGN_OR_RETURN(policy.time_window_seconds,
                      ReadDuration(*window, "utilization_policy.time_window", kMinute,
                                   kMaxRunDuration, "must be between 1m and 365d"));
  return policy;
}

Result<RunConfiguration> RunFromTree(const boost::json::object& root) {
  FW_RETURN_IF_ERROR(
      config::CheckKeys(root, "",
                        {"type", "name", "commands", "init", "env", "working_dir", "nodes",
                         "replicas", "port", "resources", "max_duration", "utilization_policy"},
                        kUnsupportedRunKeys));
  RunConfiguration run;

  const boost::json::value* type = Find(root, "type");
  if (type == nullptr) return Error("type", "is required (task, service or dev-environment)");
  FW_ASSIGN_OR_RETURN(std::string type_text, config::ReadString(*type, "type"));
  std::optional<RunType> run_type = Parse<RunType>(type_text);
  if (!run_type) {
    return Error("type", "must be one of task, service, dev-environment" + GotSuffix(type_text));
  }
  run.type = *run_type;
  std::string_view type_name = ToString(run.type);

  if (const boost::json::value* name = Find(root, "name")) {
    FW_ASSIGN_OR_RETURN(std::string text, config::ReadString(*name, "name"));
    Status valid = ValidateName("run name", text);
    if (!valid.ok()) return Error("name", valid.message());
    run.name = std::move(text);
  }

  if (const boost::json::value* commands = Find(root, "commands")) {
    FW_ASSIGN_OR_RETURN(run.commands, ReadCommands(*commands, "commands"));
  }
  if (run.commands.empty() && run.type != RunType::kDevEnvironment) {
    return Error("commands", "a " + std::string(type_name) + " needs at least one command");
  }

  if (const boost::json::value* init = Find(root, "init")) {
    if (run.type != RunType::kDevEnvironment) {
      return Error("init", "is only for dev-environment runs (use commands)");
    }
    FW_ASSIGN_OR_RETURN(run.init, ReadCommands(*init, "init"));
  }

  if (const boost::json::value* env = Find(root, "env")) {
    FW_ASSIGN_OR_RETURN(run.env, ReadEnv(*env));
  }

  if (const boost::json::value* dir = Find(root, "working_dir")) {
    FW_ASSIGN_OR_RETURN(std::string text, config::ReadString(*dir, "working_dir"));
    if (text.empty()) return Error("working_dir", "must not be empty");
    if (text.size() > kMaxWorkingDirBytes) {
      return Error("working_dir",
                   "is too long (at most " + std::to_string(kMaxWorkingDirBytes) + " bytes)");
    }
    if (text.find('\0') != std::string::npos) {
      return Error("working_dir", "must not contain NUL characters");
    }
    run.working_dir = std::move(text);
  }

  if (const boost::json::value* nodes = Find(root, "nodes")) {
    FW_ASSIGN_OR_RETURN(int64_t n, config::ReadInteger(*nodes, "nodes", 1, kMaxNodes));
    if (n > 1 && run.type != RunType::kTask) {
      return Error("nodes", "only a task can run on more than one node");
    }
    run.nodes = static_cast<int>(n);
  }

  if (const boost::json::value* replicas = Find(root, "replicas")) {
    FW_ASSIGN_OR_RETURN(int64_t n, config::ReadInteger(*replicas, "replicas", 1, kMaxReplicas));
    if (n > 1 && run.type != RunType::kService) {
      return Error("replicas", "only a service can have more than one replica");
    }
    run.replicas = static_cast<int>(n);
  }

  if (const boost::json::value* port = Find(root, "port")) {
    if (run.type != RunType::kService) return Error("port", "is only for services");
    FW_ASSIGN_OR_RETURN(int64_t n, config::ReadInteger(*port, "port", 1, 65535));
    run.port = static_cast<int>(n);
  } else if (run.type == RunType::kService) {
    return Error("port", "is required for a service (the port its replicas listen on)");
  }

  if (const boost::json::value* resources = Find(root, "resources")) {
    FW_ASSIGN_OR_RETURN(run.resources, ReadResources(*resources));
  }

  if (const boost::json::value* max = Find(root, "max_duration")) {
    bool off =
        (max->is_bool() && !max->get_bool()) || (max->is_string() && max->get_string() == "off");
    if (!off) {
      if (max->is_bool()) return Error("max_duration", std::string(kDurationHint) + " or off");
      FW_ASSIGN_OR_RETURN(
          run.max_duration_seconds,
          ReadDuration(*max, "max_duration", 1, kMaxRunDuration, "must be between 1s and 365d"));
    }
  }

  if (const boost::json::value* policy = Find(root, "utilization_policy")) {
    FW_ASSIGN_OR_RETURN(run.utilization_policy, ReadUtilizationPolicy(*policy));
    if (run.resources.gpu.count == 0) {
      return Error("utilization_policy", "needs GPUs (set resources.gpu)");
    }
  }
  return run;
}

void WriteCommands(config::JsonWriter& out, const std::vector<std::string>& commands) {
  out.BeginArray();
  for (const std::string& command : commands) out.String(command);
  out.EndArray();
}

}  // namespace

Result<RunConfiguration> ParseRunConfiguration(std::string_view text, ConfigFormat format) {
  FW_ASSIGN_OR_RETURN(boost::json::object root, config::ParseConfigTree(text, format));
  FW_ASSIGN_OR_RETURN(RunConfiguration run, RunFromTree(root));
  FW_RETURN_IF_ERROR(config::CheckNormalizedSize(ToJson(run).size()));
  return run;
}

std::string ToJson(const RunConfiguration& config) {
  config::JsonWriter out;
  out.BeginObject();
  out.Key("type");
  out.String(ToString(config.type));
  if (config.name) {
    out.Key("name");
    out.String(*config.name);
  }
  out.Key("commands");
  WriteCommands(out, config.commands);
  if (!config.init.empty()) {
    out.Key("init");
    WriteCommands(out, config.init);
  }
  out.Key("env");
  out.BeginObject();
  for (const auto& [name, value] : config.env) {
    out.Key(name);
    out.String(value);
  }
  out.EndObject();
  if (config.working_dir) {
    out.Key("working_dir");
    out.String(*config.working_dir);
  }
  out.Key("nodes");
  out.Integer(config.nodes);
  out.Key("replicas");
  out.Integer(config.replicas);
  if (config.port) {
    out.Key("port");
    out.Integer(*config.port);
  }
  out.Key("resources");
  out.BeginObject();
  out.Key("cpu");
  out.Integer(config.resources.cpus);
  if (config.resources.memory_bytes) {
    out.Key("memory");
    out.String(FormatSize(*config.resources.memory_bytes));
  }
  const GpuRequest& gpu = config.resources.gpu;
  if (gpu.count > 0) {
    out.Key("gpu");
    out.BeginObject();
    if (gpu.name) {
      out.Key("name");
      out.String(*gpu.name);
    }
    out.Key("count");
    out.Integer(gpu.count);
    if (gpu.memory_bytes) {
      out.Key("memory");
      out.String(FormatSize(*gpu.memory_bytes));
    }
    out.EndObject();
  }
  out.EndObject();
  if (config.max_duration_seconds) {
    out.Key("max_duration");
    out.Integer(*config.max_duration_seconds);
  }
  if (config.utilization_policy) {
    out.Key("utilization_policy");
    out.BeginObject();
    out.Key("min_gpu_utilization");
    out.Integer(config.utilization_policy->min_gpu_utilization);
    out.Key("time_window");
    out.Integer(config.utilization_policy->time_window_seconds);
    out.EndObject();
  }
  out.EndObject();
  return out.text();
}

Result<int64_t> ParseMemorySize(std::string_view text) {
  int64_t mib = 0;
  SizeError error = ParseSizeMiB(text, /*unit_required=*/false, mib);
  if (error != SizeError::kNone) return InvalidArgument(std::string(SizeErrorText(error)));
  return mib * kMiB;
}

Result<int64_t> ParseDurationSeconds(std::string_view text) {
  if (text.empty() || text.size() > 64) return InvalidArgument(std::string(kDurationHint));
  constexpr int64_t kMaxNumber = 10'000'000'000;  // keeps number * unit far from overflow
  int64_t total = 0;
  int last_rank = 5;  // units must come largest first, each at most once: d, h, m, s
  std::size_t i = 0;
  while (i < text.size()) {
    if (!IsDigit(text[i])) return InvalidArgument(std::string(kDurationHint));
    int64_t number = 0;
    bool too_large = false;
    while (i < text.size() && IsDigit(text[i])) {
      if (number <= kMaxNumber) number = number * 10 + (text[i] - '0');
      too_large = too_large || number > kMaxNumber;
      ++i;
    }
    int64_t unit = 1;
    int rank = 0;
    if (i < text.size()) {
      switch (text[i]) {
        case 'd':
          unit = kDay, rank = 4;
          break;
        case 'h':
          unit = kHour, rank = 3;
          break;
        case 'm':
          unit = kMinute, rank = 2;
          break;
        case 's':
          unit = 1, rank = 1;
          break;
        default:
          return InvalidArgument(std::string(kDurationHint));
      }
      ++i;
    } else if (total != 0 || last_rank != 5) {
      return InvalidArgument(std::string(kDurationHint));  // "1h30": a unit is missing
    }
    if (rank >= last_rank) return InvalidArgument(std::string(kDurationHint));
    last_rank = rank;
    if (too_large) return InvalidArgument("is too long (at most 100 years)");
    total += number * unit;
    if (total > kMaxParsedDuration) return InvalidArgument("is too long (at most 100 years)");
  }
  return total;
}

Result<GpuRequest> ParseGpuSpec(std::string_view text) {
  if (text.empty() || text.size() > 128) return InvalidArgument(std::string(kGpuSpecHint));
  if (text.find(',') != std::string_view::npos) {
    return InvalidArgument("only one GPU name is supported" + GotSuffix(text));
  }
  if (text.find("..") != std::string_view::npos) {
    return InvalidArgument("ranges are not supported" + GotSuffix(text));
  }
  GpuRequest gpu;
  std::optional<int64_t> count;
  // Parts in order: [name][:memory][:count], at least one of them.
  int stage = 0;  // 0: nothing yet, 1: name seen, 2: memory seen, 3: count seen
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(':', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(start, end - start);
    start = end + 1;
    if (part.empty() || stage == 3) return InvalidArgument(std::string(kGpuSpecHint));
    bool digits = true;
    for (char c : part) digits = digits && IsDigit(c);
    int64_t mib = 0;
    if (digits) {
      if (part.size() > 6) return InvalidArgument(GpuCountRange(""));
      count = std::stoll(std::string(part));
      if (*count > kMaxGpuCount) return InvalidArgument(GpuCountRange(part));
      stage = 3;
    } else if (SizeError error = ParseSizeMiB(part, /*unit_required=*/true, mib);
               error != SizeError::kSyntax) {
      if (stage >= 2) return InvalidArgument(std::string(kGpuSpecHint));
      if (error != SizeError::kNone) {
        return InvalidArgument("GPU memory " + std::string(SizeErrorText(error)));
      }
      gpu.memory_bytes = mib * kMiB;
      stage = 2;
    } else if (stage == 0) {
      if (!IsValidGpuName(part)) return InvalidArgument(std::string(kGpuNameHint));
      gpu.name = std::string(part);
      stage = 1;
    } else {
      return InvalidArgument(std::string(kGpuSpecHint));
    }
  }
  gpu.count = static_cast<int>(count.value_or(1));
  FW_RETURN_IF_ERROR(CheckGpuConsistency(gpu));
  return gpu;
}

}  // namespace fleetwatch::model
