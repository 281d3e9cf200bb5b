// Test support: a registry cluster on loopback. One real etcd (EtcdProcess)
// and any number of `cairn registry --role meta|data|session` processes, each
// with free ports, its own temporary directory and log, all stopped (SIGKILL)
// when the harness is destroyed.
//
// Timings are shortened for tests (etcd lease 2 s, session lease 4 s, slot
// rebuild timeout 2 s, anti-entropy every second); Flags() lists them.
//
// Thread-safety: none; use from the test thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_tls.h"
#include "coord/etcd_client.h"
#include "etcd_process.h"
#include "process.h"

namespace cairn::testing {

class ClusterHarness {
 public:
  struct Member {
    std::string id;
    std::string role;
    std::unique_ptr<ChildProcess> process;
    std::string grpc_address;   // session: the client API
    std::string admin_address;  // session
    std::string data_address;   // data: its DataNode service
  };

  explicit ClusterHarness(uint32_t slots = 64, uint32_t replicas = 2)
      : slots_(slots), replicas_(replicas) {}
  ~ClusterHarness();

  // Where a member's process runs and which host its listeners bind:
  // `command_prefix` goes before the cairn command line (e.g.
  // {"/usr/sbin/ip", "netns", "exec", "NS"}: inside a network namespace; it
  // must exec cairn in the same process so that signals reach it), `host`
  // replaces 127.0.0.1 in --listen and --admin. Members never placed run
  // as before (no prefix, 127.0.0.1). Call before Start(id); restarts keep it.
  // For etcd, see etcd().Place().
  struct Placement {
    std::vector<std::string> command_prefix{};
    std::string host = "127.0.0.1";
  };
  void Place(const std::string& id, Placement placement) { placements_[id] = std::move(placement); }

  // TLS everywhere, with certificates made by scripts/dev-certs in
  // `certs_dir` (ca.crt, etcd.*, registry.*): etcd serves https and requires
  // client certificates; every member serves its gRPC ports with
  // registry.crt (client certificates required), dials its peers with it and
  // reaches etcd with it. Call before StartEtcd().
  void UseTls(std::string certs_dir);
  bool tls() const { return !certs_dir_.empty(); }
  // Under UseTls(): member `id` uses these files instead (e.g. a pair from
  // another CA). Empty fields keep the harness's: registry.crt/.key, ca.crt,
  // and for etcd the member's own pair. Call before Start(id).
  struct MemberTls {
    std::string cert_file{};
    std::string key_file{};
    std::string ca_file{};
    std::string etcd_cert_file{};
    std::string etcd_key_file{};
  };
  void UseMemberTls(const std::string& id, MemberTls tls) { member_tls_[id] = std::move(tls); }
  // Under UseTls(): client TLS files with the pair NAME.crt/.key of
  // certs_dir (no pair when `name` is empty). Without TLS: none.
  TlsFiles ClientTls(const std::string& name) const;

  // Starts etcd. Must be called first.
  bool StartEtcd();
  // Starts one member and waits for its ready file. Extra flags are appended.
  // Starting an id again (a restart) replaces the earlier process, which is
  // killed if it still runs; a session keeps its client address.
  Member* Start(const std::string& role, const std::string& id,
                std::vector<std::string> extra_flags = {});
  // Signals a member and waits for it to exit (SIGKILL after `timeout`).
  // Returns its exit code; the member stays listed (Running() false).
  std::optional<int> Stop(const std::string& id, int signal = 15,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Member* Find(const std::string& id);
  // The client API addresses of the sessions still running, in start order.
  std::vector<std::string> SessionAddresses();

  EtcdProcess& etcd() { return etcd_; }
  // A client of the harness's etcd. REQUIRES: StartEtcd() succeeded.
  absl::StatusOr<std::unique_ptr<coord::EtcdClient>> ConnectEtcd() const;
  uint32_t slots() const { return slots_; }
  // The value of Prometheus metric `name` (a sample without labels) on a
  // session's admin port, or -1 if it cannot be read.
  double Metric(const std::string& id, const std::string& name);
  // Every member's log, for failure messages.
  std::string Logs() const;
  // The log of member `id` (all its starts, also one that never got ready).
  std::string MemberLog(const std::string& id) const;

 private:
  uint32_t slots_;
  uint32_t replicas_;
  TempDir dir_;
  EtcdProcess etcd_;
  std::vector<std::unique_ptr<Member>> members_;
  std::map<std::string, Placement> placements_;
  std::string certs_dir_;  // empty: plaintext
  std::map<std::string, MemberTls> member_tls_;
};

}  // namespace cairn::testing
