// A fake NVML for tests, loaded through the agent's real dlopen path. It implements the functions
// the agent resolves and reads its GPUs, at every call, from the file named by $FAKE_NVML_FILE:
// one GPU per line, "name|uuid|memory_total|memory_used|util", then optional "|key=value"
// fields for the other readings. In the name a backslash escapes: "\n" is a newline, "\xHH" that
// byte; a name of "@unterminated" fills the whole buffer without a NUL. $FAKE_NVML_INIT_FAIL=1
// makes nvmlInit_v2 fail.
//
// The keys (a function whose key is absent answers NVML_ERROR_NOT_SUPPORTED; a value "err"
// makes it answer NVML_ERROR_UNKNOWN):
//   power=<mW>  energy=<mJ>  temp=<C>  throttle=<mask>
//   ecc=<corrected volatile>,<uncorrected volatile>,<corrected aggregate>,<uncorrected aggregate>
//   rows=<correctable>,<uncorrectable>,<pending 0/1>,<failure 0/1>
//   retired=<single-bit pages>,<double-bit pages>,<pending 0/1>
//   nvlink=<link>;<link>;...  each "replay,recovery,crc_flit,crc_data" or "down" (inactive);
//          links past the list answer NVML_ERROR_INVALID_ARGUMENT
//   procs=<pid>:<bytes or na>;...   ("procs=" lists no process)
//   xid=off  (the GPU does not support XID events)
//
// XID events: every line "<gpu index> <xid>" of the file named by $FAKE_NVML_XID_FILE (read when
// the event set is made) is one event, delivered once per event set in file order (append lines
// to inject more); with no new line a wait sleeps at most 20 ms and answers NVML_ERROR_TIMEOUT.
//
// Built with FAKE_NVML_OLD_DRIVER it has only the core functions (those of an old driver): the
// agent must run and report what it has.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct FakeGpu {
  std::string name;
  std::string uuid;
  unsigned long long total = 0;
  unsigned long long used = 0;
  unsigned int util = 0;
  std::map<std::string, std::string> extra;  // the "key=value" fields
};

// Undoes the escapes described above.
std::string Unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 >= text.size()) {
      out += text[i];
    } else if (text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else if (text[i + 1] == 'x' && i + 3 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else {
      out += text[i + 1];
      ++i;
    }
  }
  return out;
}

std::vector<FakeGpu> ReadGpus() {
  std::vector<FakeGpu> gpus;
  const char* file = std::getenv("FAKE_NVML_FILE");
  if (file == nullptr) return gpus;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    size_t pos = 0;
    while (true) {
      size_t bar = line.find('|', pos);
      fields.push_back(line.substr(pos, bar == std::string::npos ? std::string::npos : bar - pos));
      if (bar == std::string::npos) break;
      pos = bar + 1;
    }
    if (fields.size() < 5) continue;
    FakeGpu gpu;
    gpu.name = Unescape(fields[0]);
    gpu.uuid = fields[1];
    gpu.total = std::stoull(fields[2]);
    gpu.used = std::stoull(fields[3]);
    gpu.util = static_cast<unsigned int>(std::stoul(fields[4]));
    for (size_t i = 5; i < fields.size(); ++i) {
      size_t eq = fields[i].find('=');
      if (eq != std::string::npos) gpu.extra[fields[i].substr(0, eq)] = fields[i].substr(eq + 1);
    }
    gpus.push_back(gpu);
  }
  return gpus;
}

// Device handles are 1-based indices in disguise.
int IndexOf(void* device) { return static_cast<int>(reinterpret_cast<uintptr_t>(device)) - 1; }

bool Lookup(void* device, FakeGpu& out) {
  std::vector<FakeGpu> gpus = ReadGpus();
  int index = IndexOf(device);
  if (index < 0 || static_cast<size_t>(index) >= gpus.size()) return false;
  out = gpus[static_cast<size_t>(index)];
  return true;
}

int CopyText(const std::string& text, char* buffer, unsigned int length) {
  if (length == 0) return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  if (text == "@unterminated") {
    std::memset(buffer, 'A', length);
    return 0;
  }
  size_t n = std::min<size_t>(text.size(), length - 1);
  std::memcpy(buffer, text.data(), n);
  buffer[n] = '\0';
  return 0;
}

struct Memory {
  unsigned long long total, free, used;
};
struct Utilization {
  unsigned int gpu, memory;
};

#ifndef FAKE_NVML_OLD_DRIVER

constexpr int kSuccess = 0;
constexpr int kInvalidArgument = 2;
constexpr int kNotSupported = 3;
constexpr int kInsufficientSize = 7;
constexpr int kTimeout = 10;
constexpr int kUnknown = 999;

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, separator)) parts.push_back(part);
  return parts;
}

// GPU `device`'s value of `key`: kSuccess with `value` set, or the code to answer.
int Extra(void* device, const std::string& key, std::string& value) {
  FakeGpu gpu;
  if (!Lookup(device, gpu)) return kInvalidArgument;
  auto it = gpu.extra.find(key);
  if (it == gpu.extra.end()) return kNotSupported;
  if (it->second == "err") return kUnknown;
  value = it->second;
  return kSuccess;
}

// The `position`th comma-separated number of GPU `device`'s `key`.
int ExtraNumber(void* device, const std::string& key, size_t position, unsigned long long& out) {
  std::string value;
  if (int rc = Extra(device, key, value); rc != kSuccess) return rc;
  std::vector<std::string> parts = Split(value, ',');
  if (position >= parts.size()) return kUnknown;
  out = std::stoull(parts[position]);
  return kSuccess;
}

struct EventData {
  void* device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct ProcessInfo {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct EventSet {
  std::string xid_file;  // $FAKE_NVML_XID_FILE when the set was made (no getenv while waiting)
  size_t delivered = 0;  // lines of the XID file already delivered
};

#endif  // FAKE_NVML_OLD_DRIVER

}  // namespace

extern "C" {

int nvmlInit_v2() {
  const char* fail = std::getenv("FAKE_NVML_INIT_FAIL");
  return fail != nullptr && std::string(fail) == "1" ? 999 : 0;
}
int nvmlShutdown() { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = static_cast<unsigned int>(ReadGpus().size());
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= ReadGpus().size()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = reinterpret_cast<void*>(static_cast<uintptr_t>(index) + 1);
  return 0;
}
int nvmlDeviceGetName(void* device, char* name, unsigned int length) {
  FakeGpu gpu;
  return Lookup(device, gpu) ? CopyText(gpu.name, name, length) : 2;
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  FakeGpu gpu;
  return Lookup(device, gpu) ? CopyText(gpu.uuid, uuid, length) : 2;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  FakeGpu gpu;
  if (!Lookup(device, gpu)) return 2;
  *memory = {gpu.total, gpu.total - std::min(gpu.total, gpu.used), gpu.used};
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* device, Utilization* util) {
  FakeGpu gpu;
  if (!Lookup(device, gpu)) return 2;
  *util = {gpu.util, 0};
  return 0;
}

#ifndef FAKE_NVML_OLD_DRIVER

int nvmlDeviceGetPowerUsage(void* device, unsigned int* milliwatts) {
  unsigned long long v = 0;
  int rc = ExtraNumber(device, "power", 0, v);
  if (rc == kSuccess) *milliwatts = static_cast<unsigned int>(v);
  return rc;
}
int nvmlDeviceGetTotalEnergyConsumption(void* device, unsigned long long* millijoules) {
  return ExtraNumber(device, "energy", 0, *millijoules);
}
int nvmlDeviceGetTemperature(void* device, int sensor, unsigned int* celsius) {
  if (sensor != 0) return kInvalidArgument;
  unsigned long long v = 0;
  int rc = ExtraNumber(device, "temp", 0, v);
  if (rc == kSuccess) *celsius = static_cast<unsigned int>(v);
  return rc;
}
int nvmlDeviceGetCurrentClocksEventReasons(void* device, unsigned long long* reasons) {
  return ExtraNumber(device, "throttle", 0, *reasons);
}
int nvmlDeviceGetTotalEccErrors(void* device, int type, int counter, unsigned long long* count) {
  if (type < 0 || type > 1 || counter < 0 || counter > 1) return kInvalidArgument;
  return ExtraNumber(device, "ecc", static_cast<size_t>(counter * 2 + type), *count);
}
int nvmlDeviceGetRemappedRows(void* device, unsigned int* corrected, unsigned int* uncorrected,
                              unsigned int* pending, unsigned int* failure) {
  unsigned long long v[4] = {};
  for (size_t i = 0; i < 4; ++i) {
    if (int rc = ExtraNumber(device, "rows", i, v[i]); rc != kSuccess) return rc;
  }
  *corrected = static_cast<unsigned int>(v[0]);
  *uncorrected = static_cast<unsigned int>(v[1]);
  *pending = static_cast<unsigned int>(v[2]);
  *failure = static_cast<unsigned int>(v[3]);
  return kSuccess;
}
int nvmlDeviceGetRetiredPages(void* device, int cause, unsigned int* count,
                              unsigned long long* addresses) {
  if (cause < 0 || cause > 1) return kInvalidArgument;
  unsigned long long pages = 0;
  if (int rc = ExtraNumber(device, "retired", static_cast<size_t>(cause), pages); rc != kSuccess) {
    return rc;
  }
  bool room = *count >= pages;
  if (room && addresses != nullptr) {
    for (unsigned long long i = 0; i < pages; ++i) addresses[i] = 0x1000 * (i + 1);
  }
  *count = static_cast<unsigned int>(pages);
  return room ? kSuccess : kInsufficientSize;
}
int nvmlDeviceGetRetiredPagesPendingStatus(void* device, int* pending) {
  unsigned long long v = 0;
  int rc = ExtraNumber(device, "retired", 2, v);
  if (rc == kSuccess) *pending = static_cast<int>(v);
  return rc;
}

// The entries of GPU `device`'s nvlink list, or the code to answer.
int Links(void* device, std::vector<std::string>& links) {
  std::string value;
  if (int rc = Extra(device, "nvlink", value); rc != kSuccess) return rc;
  links = Split(value, ';');
  return kSuccess;
}
int nvmlDeviceGetNvLinkState(void* device, unsigned int link, int* active) {
  std::vector<std::string> links;
  if (int rc = Links(device, links); rc != kSuccess) return rc;
  if (link >= links.size()) return kInvalidArgument;
  *active = links[link] == "down" ? 0 : 1;
  return kSuccess;
}
int nvmlDeviceGetNvLinkErrorCounter(void* device, unsigned int link, int counter,
                                    unsigned long long* value) {
  std::vector<std::string> links;
  if (int rc = Links(device, links); rc != kSuccess) return rc;
  if (link >= links.size() || links[link] == "down") return kInvalidArgument;
  std::vector<std::string> counters = Split(links[link], ',');
  if (counter < 0 || static_cast<size_t>(counter) >= counters.size()) return kNotSupported;
  *value = std::stoull(counters[static_cast<size_t>(counter)]);
  return kSuccess;
}

int nvmlDeviceGetComputeRunningProcesses_v3(void* device, unsigned int* count, ProcessInfo* infos) {
  std::string value;
  if (int rc = Extra(device, "procs", value); rc != kSuccess) return rc;
  std::vector<std::string> entries = Split(value, ';');
  if (*count < entries.size()) {
    *count = static_cast<unsigned int>(entries.size());
    return kInsufficientSize;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    size_t colon = entries[i].find(':');
    std::string memory = entries[i].substr(colon + 1);
    infos[i] = {static_cast<unsigned int>(std::stoul(entries[i].substr(0, colon))),
                memory == "na" ? ~0ULL : std::stoull(memory), 0xFFFFFFFFu, 0xFFFFFFFFu};
  }
  *count = static_cast<unsigned int>(entries.size());
  return kSuccess;
}

int nvmlEventSetCreate(EventSet** set) {
  *set = new EventSet();
  if (const char* file = std::getenv("FAKE_NVML_XID_FILE")) (*set)->xid_file = file;
  return kSuccess;
}
int nvmlEventSetFree(EventSet* set) {
  delete set;
  return kSuccess;
}
int nvmlDeviceGetSupportedEventTypes(void* device, unsigned long long* types) {
  FakeGpu gpu;
  if (!Lookup(device, gpu)) return kInvalidArgument;
  auto it = gpu.extra.find("xid");
  *types = it != gpu.extra.end() && it->second == "off" ? 0x1 : 0x8 | 0x1;
  return kSuccess;
}
int nvmlDeviceRegisterEvents(void* device, unsigned long long types, EventSet* set) {
  FakeGpu gpu;
  if (set == nullptr || !Lookup(device, gpu)) return kInvalidArgument;
  auto it = gpu.extra.find("xid");
  if ((types & 0x8) != 0 && it != gpu.extra.end() && it->second == "off") return kNotSupported;
  return kSuccess;
}
int nvmlEventSetWait_v2(EventSet* set, EventData* data, unsigned int timeout_ms) {
  std::vector<std::string> lines;
  if (!set->xid_file.empty()) {
    std::ifstream in(set->xid_file);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  if (set->delivered < lines.size()) {
    std::istringstream in(lines[set->delivered++]);
    unsigned long long index = 0, xid = 0;
    in >> index >> xid;
    *data = {reinterpret_cast<void*>(static_cast<uintptr_t>(index) + 1), 0x8, xid, 0, 0};
    return kSuccess;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 20u)));
  return kTimeout;
}

#endif  // FAKE_NVML_OLD_DRIVER

}  // extern "C"
