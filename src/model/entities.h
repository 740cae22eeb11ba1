#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/status.h"
#include "util/clock.h"

namespace fleetwatch::model {

// Plain records of the data model. Ids are UUID text; names follow names.h; times are UTC micros.

struct User {
  std::string id;
  std::string name;
  GlobalRole global_role = GlobalRole::kUser;
  TimeMicros created_at = 0;
};

struct Project {
  std::string id;
  std::string name;
  std::string owner_id;  // the user who created it
  TimeMicros created_at = 0;
};

struct Member {
  std::string project_id;
  std::string user_id;
  std::string user_name;
  ProjectRole role = ProjectRole::kUser;
};

struct Gpu {
  int index = 0;
  std::string name;  // as the host reports it: untrusted text
  std::string uuid;
  int64_t memory_bytes = 0;
  std::string vendor;  // "nvidia" or "amd"
};

struct InstanceResources {
  int cpus = 0;
  int64_t memory_bytes = 0;
  std::vector<Gpu> gpus;
};

struct Fleet {
  std::string id;
  std::string project_id;
  std::string project_name;
  std::string name;
  FleetStatus status = FleetStatus::kActive;
  std::string configuration_json;  // the normalized fleet configuration (fleet_spec.h)
  TimeMicros created_at = 0;
};

struct Instance {
  std::string id;
  std::string project_id;
  std::string project_name;
  std::string fleet_id;
  std::string fleet_name;
  std::string name;  // "{fleet}-{n}", n from 0
  int instance_num = 0;
  InstanceStatus status = InstanceStatus::kPending;
  std::string backend;   // "remote" for host fleets, "local" for the embedded fleet
  std::string hostname;  // the agent's address
  int agent_port = 0;
  std::string agent_token;      // secret shared with the agent; never leaves the server
  std::optional<double> price;  // USD per hour
  InstanceResources resources;  // filled at first contact with the agent
  TimeMicros created_at = 0;
  bool unreachable = false;  // the agent has not answered for longer than the grace period
  std::optional<TimeMicros> last_seen_at;  // last successful poll
  std::string agent_id;  // the agent instance last seen; a new id means the agent restarted
  // How the server reaches the agent (fleet_spec.h): HTTPS when `tls`, checking the certificate
  // against the pinned `tls_fingerprint`, else the PEM CAs in `tls_ca_cert`, else the system's.
  bool tls = false;
  std::string tls_ca_cert;
  std::string tls_fingerprint;  // "sha256:<64 lowercase hex>"
};

struct Job {
  std::string id;
  std::string run_id;
  std::string job_name;  // "{run}-{job_num}-{replica_num}"
  int job_num = 0;
  int replica_num = 0;
  JobStatus status = JobStatus::kSubmitted;
  std::optional<JobTerminationReason> termination_reason;
  std::optional<int> exit_code;
  std::optional<std::string> instance_id;
  std::optional<std::string> instance_name;
  std::vector<int> gpu_indices;  // GPUs of the instance assigned to this job
  TimeMicros submitted_at = 0;
  std::optional<TimeMicros> started_at;  // when the agent reported the job running
  std::optional<TimeMicros> finished_at;
  // The server's own words on why the job waits or ended ("0 of 8 CPUs free on local", "no
  // instance of project ml has a GPU named banana", "max duration 20s", "stopped by admin"); the
  // API's status_message is built from it (server/status_message.h).
  std::optional<std::string> status_detail;
};

struct Run {
  std::string id;
  std::string project_id;
  std::string project_name;
  std::string user_id;
  std::string user_name;
  std::string run_name;
  RunType type = RunType::kTask;
  RunStatus status = RunStatus::kSubmitted;
  std::optional<RunTerminationReason> termination_reason;
  TimeMicros submitted_at = 0;
  std::optional<TimeMicros> finished_at;
  std::string configuration_json;  // the normalized run configuration (run_spec.h)
  double cost = 0;                 // USD spent so far
  std::vector<Job> jobs;           // ordered by job_num, replica_num
  // Raised by the store on every write of the run or its jobs; a conditional write
  // (Store::UpdateRunIfCurrent) applies only while it is still the one read.
  int64_t row_version = 0;
};

}  // namespace fleetwatch::model
