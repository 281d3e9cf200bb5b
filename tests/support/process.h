// Test support: real child processes (the cairn binaries, curl) and
// temporary directories. Every process a test starts is killed and reaped
// when its handle is destroyed, so a failing test leaves nothing running.
//
// Thread-safety: none; use from the test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cairn::testing {

// The directory holding cairn and cairnctl: $CAIRN_BIN_DIR (set by CTest),
// else the directory of the running test binary.
std::string BinDir();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class ChildProcess {
 public:
  // Starts argv[0] (a path) with stdout and stderr appended to output_file.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             const std::string& output_file);
  ~ChildProcess();  // SIGKILL + reap if still running

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  // Waits for exit; returns the exit code (128 + signal if killed), or
  // nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool Running();
  std::string Output() const;  // everything written so far
  // Waits until the output contains `text`.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) const;

 private:
  ChildProcess(pid_t pid, std::string output_file)
      : pid_(pid), output_file_(std::move(output_file)) {}
  pid_t pid_;
  std::string output_file_;
  std::optional<int> exit_code_;
};

// Runs a command to completion and returns (exit code, output).
std::pair<int, std::string> RunCommand(const std::vector<std::string>& argv,
                                       std::chrono::milliseconds timeout);

// A `cairn registry` process on 127.0.0.1 with port 0 and a private data dir.
class RegistryProcess {
 public:
  // Extra flags are appended (e.g. "--keepalive-timeout-ms", "1000").
  explicit RegistryProcess(std::vector<std::string> extra_flags = {});
  ~RegistryProcess();

  // Starts and waits for the ready file. grpc_port 0 picks a free one;
  // Restart() reuses the port the first start got.
  bool Start(uint16_t grpc_port = 0);
  // Signals the process and waits for it (SIGKILL after 10 s). Returns its
  // exit code: 0 after a clean SIGTERM shutdown (sanitizer reports make it
  // non-zero).
  std::optional<int> Stop(int signal = 15);
  bool Restart();

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& admin_address() const { return admin_address_; }
  uint16_t grpc_port() const;
  ChildProcess* process() { return process_.get(); }
  std::string Log() const { return process_ ? process_->Output() : ""; }

 private:
  TempDir dir_;
  std::vector<std::string> extra_flags_;
  std::unique_ptr<ChildProcess> process_;
  std::string grpc_address_;
  std::string admin_address_;
  int starts_ = 0;
};

// A cairn_test_backend process (see test_backend.cc) on 127.0.0.1, or
// another program taking the same flags (cairn_test_bolt_backend).
class BackendProcess {
 public:
  explicit BackendProcess(std::string name, std::string program = "cairn_test_backend")
      : name_(std::move(name)), program_(std::move(program)) {}
  bool Start(uint16_t port = 0);
  std::optional<int> Stop(int signal = 15);
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ChildProcess* process() { return process_.get(); }

 private:
  std::string name_;
  std::string program_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
};

// A `cairn sidecar` process with the given YAML config.
class SidecarProcess {
 public:
  explicit SidecarProcess(std::string config_yaml) : config_(std::move(config_yaml)) {}
  ~SidecarProcess();
  bool Start();
  std::optional<int> Stop(int signal = 15);
  // "127.0.0.1:PORT" of a listener by name, and of the admin endpoint.
  std::string listener(const std::string& name) const;
  const std::string& admin() const { return admin_; }
  std::string Log() const { return process_ ? process_->Output() : ""; }
  ChildProcess* process() { return process_.get(); }

 private:
  std::string config_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> process_;
  std::map<std::string, std::string> listeners_;
  std::string admin_;
};

// Polls `condition` every 10 ms until it holds or the timeout passes.
template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    struct timespec ts {
      0, 10'000'000
    };
    nanosleep(&ts, nullptr);
  }
  return condition();
}

}  // namespace cairn::testing
