// Server processes for the registry bench: a child-process handle that cannot
// outlive the bench, scratch directories, free loopback ports, and the two
// anchors (a real etcd and a real ZooKeeper) started on 127.0.0.1 with their
// own data directories.
//
// Everything started here is stopped by its handle's destructor; if the bench
// dies instead, PR_SET_PDEATHSIG kills the children, and on SIGINT, SIGTERM,
// SIGHUP or the run's time limit the guard thread (StartGuard) stops them and
// removes the scratch directories before exiting.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::bench {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every
// thread created after it) and starts a thread that waits for them or for
// `time_limit`: then it stops every live child, removes every scratch
// directory and exits the process (130 on a signal, 3 on the time limit).
// Call first thing in main, before any other thread exists.
void StartGuard(std::chrono::seconds time_limit);

// Registers a function the guard thread calls before it stops the servers
// (e.g. to silence a client library that would log every lost connection).
// It must not block. Thread-safe.
void AddGuardExitHook(void (*hook)());

// A temporary directory under $TMPDIR (or under `base`, e.g. /dev/shm for
// a tmpfs), removed recursively when destroyed.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag, const std::string& base = "");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with stdout and stderr appended to a log file, in its own
// process group, killed (SIGKILL) if the thread that started it exits.
// Thread-safety: none; use from the thread that started it.
class ServerProcess {
 public:
  // argv[0] must be an absolute path.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::vector<std::string>& argv,
                                                              const std::string& log_file);
  ~ServerProcess();  // Stop()
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // SIGTERM, then SIGKILL if it has not exited after `grace`. Returns the exit
  // status (128 + signal if killed), if it exited. Idempotent.
  std::optional<int> Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  bool Running();
  pid_t pid() const { return pid_; }
  // VmRSS in bytes; 0 once it has exited.
  int64_t RssBytes() const;
  // The last `max_bytes` of the log file.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  ServerProcess(pid_t pid, std::string log_file) : pid_(pid), log_file_(std::move(log_file)) {}
  std::optional<int> Wait(std::chrono::milliseconds timeout);

  pid_t pid_;
  std::string log_file_;
  std::optional<int> exit_status_;
};

// Reads VmRSS of a process from /proc; 0 if unavailable.
int64_t ProcessRssBytes(pid_t pid);

// Ports the kernel reports free on 127.0.0.1 (all distinct). Another process
// may take one before it is used: starts retry with new ports.
std::vector<uint16_t> FreePorts(int count);

// Connects to 127.0.0.1:port, sends `request`, and returns what the peer sent
// until it closed the connection or `timeout` passed.
absl::StatusOr<std::string> TcpExchange(uint16_t port, const std::string& request,
                                        std::chrono::milliseconds timeout);

// A single-member etcd (3.4, `/usr/bin/etcd`) with its v3 gRPC API on a free
// port. `in_memory`: the data dir (and so the WAL) is on /dev/shm, a tmpfs,
// where etcd's fsync returns at once; etcd 3.4 has no --unsafe-no-fsync.
// Thread-safety: none.
class EtcdServer {
 public:
  explicit EtcdServer(bool in_memory = false);
  ~EtcdServer();
  // Starts and waits until /health reports true (at most 30 s).
  absl::Status Start();
  void Stop();
  bool Running() const;
  int64_t RssBytes() const;
  std::string LogTail() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(client_port_); }

 private:
  bool in_memory_;
  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<ServerProcess> process_;
  uint16_t client_port_ = 0;
};

// A standalone ZooKeeper (Debian's zookeeper 3.8 jar run by /usr/bin/java)
// on a free port. `in_memory`: dataDir and dataLogDir on /dev/shm (tmpfs)
// and forceSync=no (the transaction log is not fsynced).
// Thread-safety: none.
class ZooKeeperServer {
 public:
  // `heap` is the JVM's -Xmx value, e.g. "2g".
  explicit ZooKeeperServer(std::string heap, bool in_memory = false);
  ~ZooKeeperServer();
  // Starts and waits until `ruok` is answered with `imok` and `srvr` with
  // the server's mode (at most 60 s).
  absl::Status Start();
  void Stop();
  bool Running() const;
  int64_t RssBytes() const;
  std::string LogTail() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string heap_;
  bool in_memory_;
  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<ServerProcess> process_;
  uint16_t port_ = 0;
};

}  // namespace cairn::bench
