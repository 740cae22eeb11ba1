#include "model/run_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace fleetwatch::model {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

RunConfiguration MustParse(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<RunConfiguration> run = ParseRunConfiguration(text, format);
  EXPECT_TRUE(run.ok()) << run.status().ToString() << "\n" << text;
  return run.ok() ? *run : RunConfiguration();
}

// The error message for a configuration that must be refused; checks it is printable ASCII.
std::string ErrorOf(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<RunConfiguration> run = ParseRunConfiguration(text, format);
  EXPECT_FALSE(run.ok()) << "accepted:\n" << text;
  if (run.ok()) return "";
  Status status = run.status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  for (char c : status.message()) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << "unprintable byte in: " << status.message();
  }
  return status.message();
}

std::string Task(std::string_view extra) {
  return "type: task\ncommands: [\"echo hi\"]\n" + std::string(extra);
}

void ExpectSameRun(const RunConfiguration& a, const RunConfiguration& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.commands, b.commands);
  EXPECT_EQ(a.init, b.init);
  EXPECT_EQ(a.env, b.env);
  EXPECT_EQ(a.working_dir, b.working_dir);
  EXPECT_EQ(a.nodes, b.nodes);
  EXPECT_EQ(a.replicas, b.replicas);
  EXPECT_EQ(a.port, b.port);
  EXPECT_EQ(a.resources.cpus, b.resources.cpus);
  EXPECT_EQ(a.resources.memory_bytes, b.resources.memory_bytes);
  EXPECT_EQ(a.resources.gpu.count, b.resources.gpu.count);
  EXPECT_EQ(a.resources.gpu.name, b.resources.gpu.name);
  EXPECT_EQ(a.resources.gpu.memory_bytes, b.resources.gpu.memory_bytes);
  EXPECT_EQ(a.max_duration_seconds, b.max_duration_seconds);
  ASSERT_EQ(a.utilization_policy.has_value(), b.utilization_policy.has_value());
  if (a.utilization_policy) {
    EXPECT_EQ(a.utilization_policy->min_gpu_utilization, b.utilization_policy->min_gpu_utilization);
    EXPECT_EQ(a.utilization_policy->time_window_seconds, b.utilization_policy->time_window_seconds);
  }
}

// ---- accepted configurations ------------------------------------------------------------------

TEST(ParseRunConfiguration, MinimalTaskGetsDefaults) {
  RunConfiguration run = MustParse("type: task\ncommands:\n  - python train.py\n");
  EXPECT_EQ(run.type, RunType::kTask);
  EXPECT_EQ(run.name, std::nullopt);
  EXPECT_EQ(run.commands, std::vector<std::string>{"python train.py"});
  EXPECT_TRUE(run.init.empty());
  EXPECT_TRUE(run.env.empty());
  EXPECT_EQ(run.nodes, 1);
  EXPECT_EQ(run.replicas, 1);
  EXPECT_EQ(run.port, std::nullopt);
  EXPECT_EQ(run.resources.cpus, 1);
  EXPECT_EQ(run.resources.memory_bytes, std::nullopt);
  EXPECT_EQ(run.resources.gpu.count, 0);
  EXPECT_EQ(run.max_duration_seconds, std::nullopt);
  EXPECT_EQ(run.utilization_policy, std::nullopt);
}

TEST(ParseRunConfiguration, JsonGivesTheSameConfigurationAsYaml) {
  RunConfiguration yaml = MustParse(R"(
type: task
name: train-1
commands:
  - pip install -r requirements.txt
  - python train.py
env:
  LR: "0.1"
resources:
  gpu: A100:2
  memory: 64GB
max_duration: 2h
)");
  RunConfiguration json = MustParse(R"({
  "type": "task", "name": "train-1",
  "commands": ["pip install -r requirements.txt", "python train.py"],
  "env": {"LR": "0.1"},
  "resources": {"gpu": "A100:2", "memory": "64GB"},
  "max_duration": "2h"
})",
                                    ConfigFormat::kJson);
  ExpectSameRun(yaml, json);
  EXPECT_EQ(ToJson(yaml), ToJson(json));
}

TEST(ParseRunConfiguration, ReadsEveryField) {
  RunConfiguration run = MustParse(R"(
type: task
name: all-fields
commands:
  - nvidia-smi
  - python train.py --epochs 3
env:
  HF_HOME: /data/hf
  EPOCHS: 3
  RATIO: 0.5
  DEBUG: false
working_dir: experiments/a
nodes: 4
replicas: 1
resources:
  cpu: 16
  memory: 1.5TB
  gpu:
    name: H100
    count: 8
    memory: 80GB
max_duration: 1d
utilization_policy:
  min_gpu_utilization: 10
  time_window: 30m
)");
  EXPECT_EQ(run.name, "all-fields");
  EXPECT_EQ(run.commands.size(), 2u);
  std::vector<std::pair<std::string, std::string>> env = {
      {"HF_HOME", "/data/hf"}, {"EPOCHS", "3"}, {"RATIO", "0.5"}, {"DEBUG", "false"}};
  EXPECT_EQ(run.env, env);
  EXPECT_EQ(run.working_dir, "experiments/a");
  EXPECT_EQ(run.nodes, 4);
  EXPECT_EQ(run.resources.cpus, 16);
  EXPECT_EQ(run.resources.memory_bytes, 1536 * kGiB);
  EXPECT_EQ(run.resources.gpu.name, "H100");
  EXPECT_EQ(run.resources.gpu.count, 8);
  EXPECT_EQ(run.resources.gpu.memory_bytes, 80 * kGiB);
  EXPECT_EQ(run.max_duration_seconds, 86400);
  ASSERT_TRUE(run.utilization_policy.has_value());
  EXPECT_EQ(run.utilization_policy->min_gpu_utilization, 10);
  EXPECT_EQ(run.utilization_policy->time_window_seconds, 1800);
}

TEST(ParseRunConfiguration, GpuAsCountSpecOrMapping) {
  RunConfiguration count = MustParse(Task("resources:\n  gpu: 2\n"));
  EXPECT_EQ(count.resources.gpu.count, 2);
  EXPECT_EQ(count.resources.gpu.name, std::nullopt);

  RunConfiguration spec = MustParse(Task("resources:\n  gpu: A100:80GB:2\n"));
  EXPECT_EQ(spec.resources.gpu.name, "A100");
  EXPECT_EQ(spec.resources.gpu.count, 2);
  EXPECT_EQ(spec.resources.gpu.memory_bytes, 80 * kGiB);

  RunConfiguration mapping = MustParse(Task("resources:\n  gpu: {name: RTX 4090, memory: 24GB}\n"));
  EXPECT_EQ(mapping.resources.gpu.name, "RTX 4090");
  EXPECT_EQ(mapping.resources.gpu.count, 1);  // a mapping without a count means one GPU
  EXPECT_EQ(mapping.resources.gpu.memory_bytes, 24 * kGiB);

  RunConfiguration none = MustParse(Task("resources:\n  gpu: 0\n"));
  EXPECT_EQ(none.resources.gpu.count, 0);
}

TEST(ParseRunConfiguration, EnvAsMappingOrList) {
  RunConfiguration mapping = MustParse(Task("env:\n  B: '2'\n  A: x=y\n"));
  RunConfiguration list = MustParse(Task("env:\n  - B=2\n  - A=x=y\n"));
  std::vector<std::pair<std::string, std::string>> expected = {{"B", "2"}, {"A", "x=y"}};
  EXPECT_EQ(mapping.env, expected);
  EXPECT_EQ(list.env, expected);
  EXPECT_EQ(MustParse(Task("env: [EMPTY=]")).env[0].second, "");
}

TEST(ParseRunConfiguration, DevEnvironmentWithInit) {
  RunConfiguration run = MustParse("type: dev-environment\ninit:\n  - pip install jupyter\n");
  EXPECT_EQ(run.type, RunType::kDevEnvironment);
  EXPECT_EQ(run.init, std::vector<std::string>{"pip install jupyter"});
  EXPECT_TRUE(run.commands.empty());
  EXPECT_EQ(MustParse("type: dev-environment\n").type, RunType::kDevEnvironment);
}

TEST(ParseRunConfiguration, ServiceWithPortAndReplicas) {
  RunConfiguration run =
      MustParse("type: service\ncommands: [python serve.py]\nport: 8000\nreplicas: 3\n");
  EXPECT_EQ(run.type, RunType::kService);
  EXPECT_EQ(run.port, 8000);
  EXPECT_EQ(run.replicas, 3);
}

TEST(ParseRunConfiguration, MaxDurationForms) {
  EXPECT_EQ(MustParse(Task("max_duration: 90\n")).max_duration_seconds, 90);
  EXPECT_EQ(MustParse(Task("max_duration: 1h30m\n")).max_duration_seconds, 5400);
  EXPECT_EQ(MustParse(Task("max_duration: off\n")).max_duration_seconds, std::nullopt);
  EXPECT_EQ(MustParse(Task("max_duration: false\n")).max_duration_seconds, std::nullopt);
  EXPECT_EQ(MustParse(Task("max_duration: 365d\n")).max_duration_seconds, 365 * 86400);
}

TEST(ParseRunConfiguration, CpuAndMemoryForms) {
  EXPECT_EQ(MustParse(Task("resources: {cpu: '8'}")).resources.cpus, 8);
  EXPECT_EQ(MustParse(Task("resources: {memory: 16}")).resources.memory_bytes, 16 * kGiB);
  EXPECT_EQ(MustParse(Task("resources: {memory: 0.5}")).resources.memory_bytes, 512 * kMiB);
  EXPECT_EQ(MustParse(Task("resources: {memory: 512MB}")).resources.memory_bytes, 512 * kMiB);
}

TEST(ParseRunConfiguration, NullMeansNotGiven) {
  RunConfiguration run = MustParse(Task("name:\nenv:\nresources:\n"));
  EXPECT_EQ(run.name, std::nullopt);
  EXPECT_TRUE(run.env.empty());
}

// ---- refused configurations -------------------------------------------------------------------

TEST(ParseRunConfiguration, RefusesMissingOrWrongType) {
  EXPECT_THAT(ErrorOf("commands: [ls]\n"), HasSubstr("type: is required"));
  EXPECT_THAT(ErrorOf("type: job\ncommands: [ls]\n"),
              HasSubstr("type: must be one of task, service, dev-environment (got 'job')"));
  EXPECT_THAT(ErrorOf("type: Task\ncommands: [ls]\n"), HasSubstr("type: must be one of"));
  EXPECT_THAT(ErrorOf("type: [task]\ncommands: [ls]\n"), HasSubstr("type: must be a string"));
  // The value is not echoed when it holds anything but plain printable ASCII.
  std::string message = ErrorOf("type: \"ta\\nsk<b>\"\ncommands: [ls]\n");
  EXPECT_THAT(message, HasSubstr("type: must be one of"));
  EXPECT_THAT(message, Not(HasSubstr("got")));
}

TEST(ParseRunConfiguration, RefusesBadNames) {
  EXPECT_THAT(ErrorOf(Task("name: My_Run\n")), HasSubstr("name: run name must start with"));
  EXPECT_THAT(ErrorOf(Task("name: \"\"\n")), HasSubstr("name: run name must not be empty"));
  EXPECT_THAT(ErrorOf(Task("name: 12\n")), HasSubstr("name: must be a string"));
  EXPECT_THAT(ErrorOf(Task("name: \"x'; DROP TABLE runs;--\"\n")), Not(HasSubstr("DROP")));
}

TEST(ParseRunConfiguration, RefusesBadCommands) {
  EXPECT_THAT(ErrorOf("type: task\n"), HasSubstr("commands: a task needs at least one command"));
  EXPECT_THAT(ErrorOf("type: service\nport: 80\ncommands: []\n"),
              HasSubstr("commands: a service needs at least one command"));
  EXPECT_THAT(ErrorOf("type: task\ncommands: echo hi\n"),
              HasSubstr("commands: must be a list (got a string)"));
  EXPECT_THAT(ErrorOf("type: task\ncommands: [echo, 3]\n"),
              HasSubstr("commands[1]: must be a string (got an integer)"));
  EXPECT_THAT(ErrorOf("type: task\ncommands: [\"\"]\n"),
              HasSubstr("commands[0]: must not be empty"));
  EXPECT_THAT(ErrorOf("type: task\ncommands: [\"a\\0b\"]\n"),
              HasSubstr("commands[0]: must not contain NUL"));
  std::string long_command =
      "{\"type\": \"task\", \"commands\": [\"" + std::string(64 * 1024 + 1, 'x') + "\"]}";
  EXPECT_THAT(ErrorOf(long_command, ConfigFormat::kJson),
              HasSubstr("commands[0]: is too long (at most 65536 bytes)"));
  std::string many = "{\"type\": \"task\", \"commands\": [\"x\"";
  for (int i = 0; i < 1000; ++i) many += ",\"x\"";
  EXPECT_THAT(ErrorOf(many + "]}", ConfigFormat::kJson),
              HasSubstr("commands: has too many commands (at most 1000)"));
}

TEST(ParseRunConfiguration, RefusesInitOutsideDevEnvironments) {
  EXPECT_THAT(ErrorOf(Task("init: [ls]\n")), HasSubstr("init: is only for dev-environment runs"));
}

TEST(ParseRunConfiguration, RefusesBadEnv) {
  EXPECT_THAT(ErrorOf(Task("env:\n  1BAD: x\n")),
              HasSubstr("env: variable names must match ^[A-Za-z_][A-Za-z0-9_]*$"));
  EXPECT_THAT(ErrorOf(Task("env: [\"BAD-NAME=1\"]\n")), HasSubstr("env[0]: variable names"));
  EXPECT_THAT(ErrorOf(Task("env: [NOVALUE]\n")), HasSubstr("env[0]: must look like NAME=VALUE"));
  EXPECT_THAT(ErrorOf(Task("env: [A=1, A=2]\n")), HasSubstr("env: duplicate variable (got 'A')"));
  EXPECT_THAT(ErrorOf(Task("env:\n  A: 1\n  A: 2\n")), HasSubstr("duplicate key 'A'"));
  EXPECT_THAT(ErrorOf(Task("env:\n  A: \"x\\0y\"\n")),
              HasSubstr("env.A: value must not contain NUL"));
  EXPECT_THAT(ErrorOf(Task("env:\n  A: [1]\n")),
              HasSubstr("env.A: must be a string, number or boolean (got a list)"));
  EXPECT_THAT(ErrorOf(Task("env: 3\n")), HasSubstr("env: must be a mapping"));
}

TEST(ParseRunConfiguration, RefusesBadWorkingDir) {
  EXPECT_THAT(ErrorOf(Task("working_dir: \"\"\n")), HasSubstr("working_dir: must not be empty"));
  EXPECT_THAT(ErrorOf(Task("working_dir: \"/a\\0b\"\n")),
              HasSubstr("working_dir: must not contain"));
  EXPECT_THAT(ErrorOf(Task("working_dir: 5\n")), HasSubstr("working_dir: must be a string"));
}

TEST(ParseRunConfiguration, RefusesBadNodesReplicasAndPorts) {
  EXPECT_THAT(ErrorOf(Task("nodes: 0\n")), HasSubstr("nodes: must be between 1 and 1000 (got 0)"));
  EXPECT_THAT(ErrorOf(Task("nodes: -3\n")), HasSubstr("nodes: must be between 1 and 1000"));
  EXPECT_THAT(ErrorOf(Task("nodes: 1001\n")), HasSubstr("nodes: must be between 1 and 1000"));
  EXPECT_THAT(ErrorOf(Task("nodes: true\n")),
              HasSubstr("nodes: must be an integer (got a boolean)"));
  EXPECT_THAT(ErrorOf(Task("nodes: 2.5\n")), HasSubstr("nodes: must be an integer"));
  EXPECT_THAT(ErrorOf(Task("nodes: \"2\"\n")),
              HasSubstr("nodes: must be an integer (got a string)"));
  EXPECT_THAT(ErrorOf(Task("nodes: 99999999999999999999\n")), HasSubstr("nodes: is out of range"));
  EXPECT_THAT(ErrorOf(Task("nodes: 18446744073709551615\n")), HasSubstr("nodes: is out of range"));
  EXPECT_THAT(
      ErrorOf(R"({"type": "task", "commands": ["x"], "nodes": 1e400})", ConfigFormat::kJson),
      HasSubstr("nodes: must be an integer"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\nport: 80\nnodes: 2\n"),
              HasSubstr("nodes: only a task can run on more than one node"));
  EXPECT_THAT(ErrorOf(Task("replicas: 2\n")),
              HasSubstr("replicas: only a service can have more than one replica"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\nport: 80\nreplicas: 101\n"),
              HasSubstr("replicas: must be between 1 and 100"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\n"),
              HasSubstr("port: is required for a service"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\nport: 0\n"),
              HasSubstr("port: must be between 1 and 65535"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\nport: 65536\n"),
              HasSubstr("port: must be between 1 and 65535"));
  EXPECT_THAT(ErrorOf("type: service\ncommands: [x]\nport: \"8000\"\n"),
              HasSubstr("port: must be an integer (got a string)"));
  EXPECT_THAT(ErrorOf(Task("port: 8000\n")), HasSubstr("port: is only for services"));
  EXPECT_EQ(MustParse(Task("nodes: 1\nreplicas: 1\n")).nodes, 1);
}

TEST(ParseRunConfiguration, RefusesBadResources) {
  EXPECT_THAT(ErrorOf(Task("resources: 4\n")), HasSubstr("resources: must be a mapping"));
  EXPECT_THAT(ErrorOf(Task("resources: {cpu: 0}\n")),
              HasSubstr("resources.cpu: must be between 1 and 4096"));
  EXPECT_THAT(ErrorOf(Task("resources: {cpu: 5000}\n")),
              HasSubstr("resources.cpu: must be between"));
  EXPECT_THAT(ErrorOf(Task("resources: {cpu: \"2..\"}\n")),
              HasSubstr("resources.cpu: must be a number of CPUs"));
  EXPECT_THAT(ErrorOf(Task("resources: {cpu: 1.5}\n")),
              HasSubstr("resources.cpu: must be an integer"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: lots}\n")),
              HasSubstr("resources.memory: must be a size like \"16GB\""));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: 8 GB}\n")),
              HasSubstr("resources.memory: must be a size like \"16GB\""));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: 65TB}\n")),
              HasSubstr("resources.memory: is too large"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: 100000}\n")),
              HasSubstr("resources.memory: is too large"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: 0}\n")),
              HasSubstr("resources.memory: is too small"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: -1}\n")),
              HasSubstr("resources.memory: is too small"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: -.inf}\n")), HasSubstr("memory: is too small"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: .inf}\n")), HasSubstr("memory: is too large"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: .nan}\n")), HasSubstr("memory: must be a size"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: true}\n")),
              HasSubstr("resources.memory: must be a size"));
  EXPECT_THAT(ErrorOf(Task("resources: {memory: 99999999999999999999GB}\n")),
              HasSubstr("resources.memory: is too large"));
  EXPECT_THAT(ErrorOf(Task("resources: {disk: 100GB}\n")),
              HasSubstr("resources.disk: is not supported by the process runtime"));
  EXPECT_THAT(ErrorOf(Task("resources: {ram: 1}\n")), HasSubstr("resources: unknown key 'ram'"));
}

TEST(ParseRunConfiguration, RefusesBadGpus) {
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: 65}\n")),
              HasSubstr("resources.gpu: must be between 0 and 64"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: -1}\n")),
              HasSubstr("resources.gpu: must be between 0 and 64"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: true}\n")),
              HasSubstr("resources.gpu: must be a GPU count"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: \"H100,A100:2\"}\n")),
              HasSubstr("resources.gpu: only one GPU name is supported"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: \"A100:1..2\"}\n")),
              HasSubstr("resources.gpu: ranges are not supported"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: {name: \"A100;rm\"}}\n")),
              HasSubstr("resources.gpu.name: GPU name must be"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: {count: 65}}\n")),
              HasSubstr("resources.gpu.count: must be between 0 and 64"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: {name: A100, count: 0}}\n")),
              HasSubstr("resources.gpu: a GPU name or memory needs a GPU count of at least 1"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: {memory: 0GB}}\n")),
              HasSubstr("resources.gpu.memory: is too small"));
  EXPECT_THAT(ErrorOf(Task("resources: {gpu: {vendor: nvidia}}\n")),
              HasSubstr("resources.gpu.vendor: is not supported"));
}

TEST(ParseRunConfiguration, RefusesBadDurationsAndPolicies) {
  EXPECT_THAT(ErrorOf(Task("max_duration: 0\n")),
              HasSubstr("max_duration: must be between 1s and 365d"));
  EXPECT_THAT(ErrorOf(Task("max_duration: 366d\n")),
              HasSubstr("max_duration: must be between 1s and 365d"));
  EXPECT_THAT(ErrorOf(Task("max_duration: true\n")), HasSubstr("max_duration: must be a duration"));
  EXPECT_THAT(ErrorOf(Task("max_duration: 2 hours\n")),
              HasSubstr("max_duration: must be a duration"));
  EXPECT_THAT(ErrorOf(Task("max_duration: 1.5\n")), HasSubstr("max_duration: must be an integer"));
  EXPECT_THAT(ErrorOf(Task("max_duration: 99999999999999999999d\n")),
              HasSubstr("max_duration: is too long"));
  const std::string gpu = "resources: {gpu: 1}\n";
  EXPECT_THAT(ErrorOf(Task("utilization_policy: {min_gpu_utilization: 10, time_window: 1h}\n")),
              HasSubstr("utilization_policy: needs GPUs"));
  EXPECT_THAT(
      ErrorOf(Task(gpu + "utilization_policy: {min_gpu_utilization: 101, time_window: 1h}\n")),
      HasSubstr("utilization_policy.min_gpu_utilization: must be between 0 and 100"));
  EXPECT_THAT(
      ErrorOf(Task(gpu + "utilization_policy: {min_gpu_utilization: 10, time_window: 59s}\n")),
      HasSubstr("utilization_policy.time_window: must be between 1m and 365d"));
  EXPECT_THAT(ErrorOf(Task(gpu + "utilization_policy: {time_window: 1h}\n")),
              HasSubstr("utilization_policy.min_gpu_utilization: is required"));
  EXPECT_THAT(ErrorOf(Task(gpu + "utilization_policy: {min_gpu_utilization: 10}\n")),
              HasSubstr("utilization_policy.time_window: is required"));
  EXPECT_THAT(
      ErrorOf(Task(gpu + "utilization_policy: {min_gpu_utilization: 1, time_window: 1h, x: 1}\n")),
      HasSubstr("utilization_policy: unknown key 'x'"));
}

TEST(ParseRunConfiguration, RefusesUnsupportedDstackKeys) {
  for (std::string key :
       {"image", "docker", "python", "nvcc", "registry_auth", "volumes", "ide", "backends",
        "regions", "spot_policy", "retry", "gateway", "scaling", "model", "auth", "ports"}) {
    EXPECT_THAT(ErrorOf(Task(key + ": x\n")),
                HasSubstr(key + ": is not supported by the process runtime"))
        << key;
  }
  EXPECT_THAT(ErrorOf(Task("image: ubuntu\n")), HasSubstr("not in a container"));
}

TEST(ParseRunConfiguration, RefusesUnknownKeysEchoingOnlySafeOnes) {
  EXPECT_EQ(ErrorOf(Task("colour: blue\n")), "unknown key 'colour'");
  EXPECT_EQ(ErrorOf(Task("\"<script>\": 1\n")), "unknown key");
  EXPECT_EQ(ErrorOf(Task("\"a\\nb\": 1\n")), "unknown key");
  EXPECT_EQ(ErrorOf(Task(std::string(65, 'k') + ": 1\n")), "unknown key");
}

TEST(ParseRunConfiguration, RefusesMalformedInput) {
  EXPECT_THAT(ErrorOf("type: task\ncommands: [ls\n"), HasSubstr("malformed YAML at line"));
  EXPECT_THAT(ErrorOf("{\"type\": \"task\",}", ConfigFormat::kJson), HasSubstr("malformed JSON: "));
  EXPECT_EQ(ErrorOf(""), "empty configuration");
  EXPECT_EQ(ErrorOf("", ConfigFormat::kJson), "empty configuration");
  EXPECT_THAT(ErrorOf("- type: task\n"), HasSubstr("configuration must be a mapping"));
  EXPECT_THAT(ErrorOf(std::string(10'000, '[') + std::string(10'000, ']'), ConfigFormat::kJson),
              HasSubstr("nested too deeply"));
  EXPECT_THAT(ErrorOf(std::string(10'000, '[')), HasSubstr("nested too deeply"));
}

// ---- ToJson -----------------------------------------------------------------------------------

TEST(RunConfigurationToJson, WritesCompactStableJson) {
  RunConfiguration run = MustParse(
      "type: service\nname: web\ncommands: [serve]\nport: 8000\nreplicas: 2\n"
      "env: {A: 1, Q: 'say \"hi\"'}\nresources: {cpu: 2, memory: 1.5GB, gpu: A10G:24GB:1}\n"
      "max_duration: 1h\n");
  EXPECT_EQ(
      ToJson(run),
      R"({"type":"service","name":"web","commands":["serve"],"env":{"A":"1","Q":"say \"hi\""},)"
      R"("nodes":1,"replicas":2,"port":8000,"resources":{"cpu":2,"memory":"1536MB",)"
      R"("gpu":{"name":"A10G","count":1,"memory":"24GB"}},"max_duration":3600})");
}

TEST(RunConfigurationToJson, RoundTripsThroughTheParser) {
  const char* configs[] = {
      "type: task\ncommands: [ls]\n",
      "type: task\nname: t\ncommands: [\"echo \\\"q\\\" \\\\ \\t tab\", \"é ☃\"]\nnodes: 3\n"
      "env: [Z=1, A=, B=x=y]\nworking_dir: /w\nresources: {memory: 1.3GB, gpu: 8}\n",
      "type: dev-environment\ninit: [a, b]\nresources: {gpu: {name: RTX 4090, memory: 0.5TB}}\n"
      "utilization_policy: {min_gpu_utilization: 5, time_window: 2h}\nmax_duration: 45s\n",
      "type: service\ncommands: [s]\nport: 1\nreplicas: 100\nresources: {cpu: '4096', memory: "
      "64TB, gpu: 80GB:2}\n",
      "type: dev-environment\ncommands: []\nmax_duration: off\nresources: {memory: 1MB}\n",
  };
  for (const char* yaml : configs) {
    RunConfiguration first = MustParse(yaml);
    std::string json = ToJson(first);
    RunConfiguration second = MustParse(json, ConfigFormat::kJson);
    ExpectSameRun(first, second);
    EXPECT_EQ(ToJson(second), json);
  }
}

TEST(RunConfigurationToJson, EscapesControlCharacters) {
  RunConfiguration run;
  run.commands = {std::string("a\x01\n\x7f", 4)};
  EXPECT_THAT(ToJson(run), HasSubstr(R"("commands":["a\u0001\n\u007f"])"));
  RunConfiguration back = MustParse(ToJson(run), ConfigFormat::kJson);
  EXPECT_EQ(back.commands, run.commands);
}

// ---- size of the normalized form ---------------------------------------------------------------

// `count` commands of 60,000 bytes each, as YAML or JSON.
std::string TaskWithCommands(int count, ConfigFormat format) {
  std::string command(60'000, 'x');
  std::string text = format == ConfigFormat::kYaml ? "type: task\ncommands:\n"
                                                   : R"({"type": "task", "commands": [)";
  for (int i = 0; i < count; ++i) {
    if (format == ConfigFormat::kYaml) {
      text += "  - " + command + "\n";
    } else {
      text += (i ? ",\"" : "\"") + command + "\"";
    }
  }
  if (format == ConfigFormat::kJson) text += "]}";
  return text;
}

TEST(ParseRunConfiguration, AcceptsA900KilobyteConfiguration) {
  for (ConfigFormat format : {ConfigFormat::kYaml, ConfigFormat::kJson}) {
    RunConfiguration run = MustParse(TaskWithCommands(15, format), format);
    EXPECT_EQ(run.commands.size(), 15u);
    EXPECT_GT(ToJson(run).size(), 900'000u);
    // The stored form parses back.
    EXPECT_EQ(MustParse(ToJson(run), ConfigFormat::kJson).commands, run.commands);
  }
}

TEST(ParseRunConfiguration, RefusesANormalizedFormOverOneMebibyte) {
  EXPECT_THAT(ErrorOf(TaskWithCommands(18, ConfigFormat::kYaml)),
              HasSubstr("configuration is too large (over 1 MiB as JSON"));
  EXPECT_EQ(ErrorOf(TaskWithCommands(18, ConfigFormat::kJson), ConfigFormat::kJson),
            "configuration is too large (over 1 MiB as normalized JSON)");
}

TEST(ParseRunConfiguration, RefusesAnEnvAliasBombQuickly) {
  // 200 variables that all alias one 60 KB value: 12 MB once expanded, refused by the
  // converter's byte count before the tree is built.
  std::string text =
      "type: task\ncommands: [x]\nenv:\n  V0: &v '" + std::string(60'000, 'v') + "'\n";
  for (int i = 1; i < 200; ++i) text += "  V" + std::to_string(i) + ": *v\n";
  EXPECT_THAT(ErrorOf(text), HasSubstr("configuration is too large"));
}

}  // namespace
}  // namespace fleetwatch::model
