#pragma once

// dcgm-exporter's text as a host with 8 H100s under load would serve it, for the benchmarks: the
// exposition benchmark's synthetic fleets and the simulated agents' DCGM reports. Header-only;
// thread-safe (pure functions of their arguments).

#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <string_view>

namespace fleetwatch::bench {

// The 49 fields the agent asks dcgm-exporter for (spec/METRICS.md), with dcgm-exporter's HELP
// and a plausible range for an H100 under load.
struct DcgmField {
  const char* name;
  bool counter;  // else a gauge
  const char* help;
  double low, high;
  int decimals;
};

constexpr bool kG = false;
constexpr bool kC = true;
constexpr DcgmField kDcgmFields[] = {
    {"DCGM_FI_DEV_SM_CLOCK", kG, "SM clock frequency (in MHz).", 1410, 1980, 0},
    {"DCGM_FI_DEV_MEM_CLOCK", kG, "Memory clock frequency (in MHz).", 2619, 2619, 0},
    {"DCGM_FI_DEV_MEMORY_TEMP", kG, "Memory temperature (in C).", 30, 75, 0},
    {"DCGM_FI_DEV_GPU_TEMP", kG, "GPU temperature (in C).", 30, 80, 0},
    {"DCGM_FI_DEV_POWER_USAGE", kG, "Power draw (in W).", 70, 700, 3},
    {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", kC, "Total energy consumption since boot (in mJ).",
     1e9, 9e11, 0},
    {"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", kC, "Total number of PCIe retries.", 0, 3, 0},
    {"DCGM_FI_DEV_GPU_UTIL", kG, "GPU utilization (in %).", 0, 100, 0},
    {"DCGM_FI_DEV_MEM_COPY_UTIL", kG, "Memory utilization (in %).", 0, 100, 0},
    {"DCGM_FI_DEV_ENC_UTIL", kG, "Encoder utilization (in %).", 0, 0, 0},
    {"DCGM_FI_DEV_DEC_UTIL", kG, "Decoder utilization (in %).", 0, 0, 0},
    {"DCGM_FI_DEV_XID_ERRORS", kG, "Value of the last XID error encountered.", 0, 0, 0},
    {"DCGM_FI_DEV_FB_FREE", kG, "Framebuffer memory free (in MiB).", 500, 81000, 0},
    {"DCGM_FI_DEV_FB_USED", kG, "Framebuffer memory used (in MiB).", 500, 81000, 0},
    {"DCGM_FI_DEV_POWER_VIOLATION", kC, "Throttling duration due to power constraints (in us).", 0,
     5e8, 0},
    {"DCGM_FI_DEV_THERMAL_VIOLATION", kC, "Throttling duration due to thermal constraints (in us).",
     0, 1e6, 0},
    {"DCGM_FI_DEV_SYNC_BOOST_VIOLATION", kC,
     "Throttling duration due to sync-boost constraints (in us).", 0, 0, 0},
    {"DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", kC,
     "Throttling duration due to board limit constraints (in us).", 0, 0, 0},
    {"DCGM_FI_DEV_LOW_UTIL_VIOLATION", kC, "Throttling duration due to low utilization (in us).", 0,
     0, 0},
    {"DCGM_FI_DEV_RELIABILITY_VIOLATION", kC,
     "Throttling duration due to reliability constraints (in us).", 0, 0, 0},
    {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", kC, "Total number of single-bit volatile ECC errors.", 0, 2,
     0},
    {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", kC, "Total number of double-bit volatile ECC errors.", 0, 0,
     0},
    {"DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", kC, "Total number of single-bit persistent ECC errors.", 0,
     20, 0},
    {"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", kC, "Total number of double-bit persistent ECC errors.", 0, 0,
     0},
    {"DCGM_FI_DEV_RETIRED_SBE", kC, "Total number of retired pages due to single-bit errors.", 0, 0,
     0},
    {"DCGM_FI_DEV_RETIRED_DBE", kC, "Total number of retired pages due to double-bit errors.", 0, 0,
     0},
    {"DCGM_FI_DEV_RETIRED_PENDING", kC, "Total number of pages pending retirement.", 0, 0, 0},
    {"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", kC,
     "Number of remapped rows for uncorrectable errors", 0, 0, 0},
    {"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", kC, "Number of remapped rows for correctable errors",
     0, 4, 0},
    {"DCGM_FI_DEV_ROW_REMAP_FAILURE", kG, "Whether remapping of rows has failed", 0, 0, 0},
    {"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", kC,
     "Total number of NVLink flow-control CRC errors.", 0, 0, 0},
    {"DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", kC, "Total number of NVLink data CRC errors.",
     0, 0, 0},
    {"DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", kC, "Total number of NVLink retries.", 0, 0, 0},
    {"DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", kC, "Total number of NVLink recovery errors.",
     0, 0, 0},
    {"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", kC,
     "Total number of NVLink bandwidth counters for all lanes.", 1e12, 9e14, 0},
    {"DCGM_FI_DEV_NVLINK_BANDWIDTH_L0", kC, "The number of bytes of active NVLink rx or tx data.",
     1e11, 9e13, 0},
    {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", kG, "Ratio of time the graphics engine is active.", 0, 1, 6},
    {"DCGM_FI_PROF_SM_ACTIVE", kG, "The ratio of cycles an SM has at least 1 warp assigned.", 0, 1,
     6},
    {"DCGM_FI_PROF_SM_OCCUPANCY", kG, "The ratio of number of warps resident on an SM.", 0, 1, 6},
    {"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", kG, "Ratio of cycles the tensor (HMMA) pipe is active.", 0,
     1, 6},
    {"DCGM_FI_PROF_PIPE_FP64_ACTIVE", kG, "Ratio of cycles the fp64 pipes are active.", 0, 0.1, 6},
    {"DCGM_FI_PROF_PIPE_FP32_ACTIVE", kG, "Ratio of cycles the fp32 pipes are active.", 0, 1, 6},
    {"DCGM_FI_PROF_PIPE_FP16_ACTIVE", kG, "Ratio of cycles the fp16 pipes are active.", 0, 1, 6},
    {"DCGM_FI_PROF_PIPE_INT_ACTIVE", kG, "Ratio of cycles the integer pipe is active.", 0, 0.3, 6},
    {"DCGM_FI_PROF_DRAM_ACTIVE", kG,
     "Ratio of cycles the device memory interface is active sending or receiving data.", 0, 1, 6},
    {"DCGM_FI_PROF_PCIE_TX_BYTES", kC,
     "The number of bytes of active pcie tx data including both header and payload.", 1e6, 1e10, 0},
    {"DCGM_FI_PROF_PCIE_RX_BYTES", kC,
     "The number of bytes of active pcie rx data including both header and payload.", 1e6, 1e10, 0},
    {"DCGM_FI_PROF_NVLINK_RX_BYTES", kC,
     "The number of bytes of active NvLink rx data including both header and payload.", 1e8, 1e11,
     0},
    {"DCGM_FI_PROF_NVLINK_TX_BYTES", kC,
     "The number of bytes of active NvLink tx data including both header and payload.", 1e8, 1e11,
     0},
};
static_assert(std::size(kDcgmFields) == 49, "spec/METRICS.md lists 49 DCGM fields");

// One GPU of a host, as its dcgm-exporter labels it.
struct DcgmGpu {
  int index = 0;
  std::string uuid;
  std::string model = "NVIDIA H100 80GB HBM3";
};

// Every field of kDcgmFields for each GPU, with HELP and TYPE, labels `gpu`, `UUID`,
// `pci_bus_id`, `device`, `modelName`, `Hostname`, `DCGM_FI_DRIVER_VERSION`, and a value drawn
// from the field's range.
inline std::string DcgmExporterText(std::string_view hostname, std::span<const DcgmGpu> gpus,
                                    std::mt19937_64& rng) {
  // H100 SXM bus ids of an 8-GPU host.
  constexpr const char* kPciBus[8] = {"18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"};
  const std::string host(hostname);
  std::string text;
  text.reserve(200 * 1024);
  for (const DcgmField& field : kDcgmFields) {
    text += "# HELP ";
    text += field.name;
    text += ' ';
    text += field.help;
    text += "\n# TYPE ";
    text += field.name;
    text += field.counter ? " counter\n" : " gauge\n";
    for (const DcgmGpu& gpu : gpus) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      char value[64];
      std::snprintf(value, sizeof value, "%.*f", field.decimals,
                    field.low + u * (field.high - field.low));
      char line[512];
      std::snprintf(line, sizeof line,
                    "%s{gpu=\"%d\",UUID=\"%s\",pci_bus_id=\"00000000:%s:00.0\",device=\"nvidia%d\","
                    "modelName=\"%s\",Hostname=\"%s\",DCGM_FI_DRIVER_VERSION=\"535.129.03\"} %s\n",
                    field.name, gpu.index, gpu.uuid.c_str(), kPciBus[gpu.index % 8], gpu.index,
                    gpu.model.c_str(), host.c_str(), value);
      text += line;
    }
  }
  return text;
}

}  // namespace fleetwatch::bench
