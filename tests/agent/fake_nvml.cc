// A fake NVML for tests, loaded through the agent's real dlopen path. It implements exactly the
// functions the agent resolves and reads its GPUs, at every call, from the file named by
// $FAKE_NVML_FILE: one GPU per line, "name|uuid|memory_total|memory_used|util". In the name a
// backslash escapes: "\n" is a newline, "\xHH" that byte; a name of "@unterminated" fills the
// whole buffer without a NUL. $FAKE_NVML_INIT_FAIL=1 makes nvmlInit_v2 fail.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct FakeGpu {
  std::string name;
  std::string uuid;
  unsigned long long total = 0;
  unsigned long long used = 0;
  unsigned int util = 0;
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
    if (fields.size() != 5) continue;
    FakeGpu gpu;
    gpu.name = Unescape(fields[0]);
    gpu.uuid = fields[1];
    gpu.total = std::stoull(fields[2]);
    gpu.used = std::stoull(fields[3]);
    gpu.util = static_cast<unsigned int>(std::stoul(fields[4]));
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

}  // extern "C"
