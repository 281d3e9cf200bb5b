// Test support: a real single-member etcd (Debian's /usr/bin/etcd, 3.4) on
// 127.0.0.1 with free client and peer ports and a private data directory.
//
// The process gets PR_SET_PDEATHSIG(SIGKILL): if the test process dies
// (crash, timeout kill), the kernel kills etcd too, so nothing outlives a
// test. (The signal follows the *thread* that started it: start etcd from
// the test's main thread.) The destructor kills and reaps it and removes the
// data directory.
//
// Thread-safety: none; use from the test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace cairn::testing {

// Ports the kernel reports free on 127.0.0.1 (distinct). Another process may
// take one before it is bound: callers retry with new ones.
std::vector<uint16_t> FreeLoopbackPorts(int count);

// Starts argv[0] (a path) with stdout and stderr appended to output_file and
// PR_SET_PDEATHSIG(SIGKILL). Returns the pid, or -1.
pid_t SpawnTiedToParent(const std::vector<std::string>& argv, const std::string& output_file);

class EtcdProcess {
 public:
  EtcdProcess();
  ~EtcdProcess();  // SIGKILL + reap

  // Runs etcd behind `command_prefix` (e.g. {"/usr/sbin/ip", "netns", "exec",
  // "NS"}: inside a network namespace) with its listeners on `host` instead
  // of 127.0.0.1. Call before Start(); Restart() keeps it. The prefix must
  // exec etcd in the same process (as `ip netns exec` does), so that pid()
  // and signals reach etcd itself.
  void Place(std::vector<std::string> command_prefix, std::string host);

  // Serves clients over TLS only (https:// URLs) with `cert_file`/`key_file`,
  // and with `client_ca_file` requires client certificates chaining to it
  // (--client-cert-auth). Health checks then use curl, trusting
  // client_ca_file (also the CA of cert_file here) and presenting
  // `client_cert_file`/`client_key_file`. Call before Start(); Restart()
  // keeps it.
  struct Tls {
    std::string cert_file;
    std::string key_file;
    std::string client_ca_file;
    std::string client_cert_file;
    std::string client_key_file;
  };
  void UseTls(Tls tls) { tls_ = std::move(tls); }
  bool tls() const { return !tls_.cert_file.empty(); }

  // Picks free ports, starts etcd and waits (up to 20 s) until its /health
  // says true. Retries with new ports if they were taken meanwhile.
  bool Start();
  // SIGTERM (SIGKILL after 10 s) and reap; the data dir and ports are kept
  // for Restart().
  void Stop(int signal = 15);
  // Starts again on the same ports with the same data.
  bool Restart();
  // SIGSTOP / SIGCONT: etcd keeps its sockets open but answers nothing.
  void Pause();
  void Resume();
  bool Running();

  // "HOST:PORT" of the client (gRPC) listener (HOST 127.0.0.1 unless Place()d).
  std::string endpoint() const { return host_ + ":" + std::to_string(client_port_); }
  // endpoint() with its scheme: "https://HOST:PORT" under UseTls().
  std::string url() const { return (tls() ? "https://" : "http://") + endpoint(); }
  pid_t pid() const { return pid_; }
  std::string Log() const;

 private:
  bool Launch();
  bool Healthy() const;
  bool HealthCheckTls() const;

  TempDir dir_;
  std::vector<std::string> command_prefix_;
  std::string host_ = "127.0.0.1";
  Tls tls_;
  pid_t pid_ = -1;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  int starts_ = 0;
};

}  // namespace cairn::testing
