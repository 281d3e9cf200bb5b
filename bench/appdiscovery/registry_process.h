// A `cairn registry` child process for the application-level discovery
// bench: started on 127.0.0.1 with free ports and a temporary data dir,
// stopped (and the dir removed) by the destructor. Besides its RSS it answers
// the bench's read-backs: record counts through the public query RPCs and
// counters through the admin /metrics endpoint.
//
// Thread-safety: none; use from one thread. The child cannot outlive the bench
// (bench/registry/anchor_servers.h: PR_SET_PDEATHSIG and the guard thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anchor_servers.h"

namespace cairn::bench {

// What the registry holds, read back through ListDataInfos and ListApps.
struct RegistryCounts {
  int64_t publishers = 0;   // sum over dataInfoIds
  int64_t subscribers = 0;  // sum over dataInfoIds
  int64_t datums = 0;       // dataInfoIds listed
  int64_t revisions = 0;    // distinct revisions in use by app instances
};

class RegistryProcess {
 public:
  // Starts `<bin_dir>/cairn registry` and waits (at most 30 s) for its ready
  // file. `tag` names the scratch dir.
  static absl::StatusOr<std::unique_ptr<RegistryProcess>> Start(const std::string& bin_dir,
                                                                const std::string& tag);
  ~RegistryProcess();
  RegistryProcess(const RegistryProcess&) = delete;
  RegistryProcess& operator=(const RegistryProcess&) = delete;

  const std::string& address() const { return grpc_address_; }
  pid_t pid() const { return process_->pid(); }
  bool Running() { return process_->Running(); }
  int64_t RssBytes() const { return process_->RssBytes(); }
  std::string LogTail() const { return process_->LogTail(); }

  // Every sample of /metrics, keyed by its series text as exposed, e.g.
  // `cairn_registry_pushes_total{result="sent"}`.
  absl::StatusOr<std::map<std::string, double>> ScrapeMetrics() const;
  absl::StatusOr<RegistryCounts> Count() const;

 private:
  RegistryProcess() = default;

  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<ServerProcess> process_;
  std::string grpc_address_;
  uint16_t admin_port_ = 0;
};

}  // namespace cairn::bench
