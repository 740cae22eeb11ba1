// A shared library that is not NVML: the agent must load it, find no NVML functions and report
// no NVIDIA GPUs without crashing.
extern "C" int fleetwatch_not_nvml() { return 42; }
