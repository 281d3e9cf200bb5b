#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace cairn::testing {

std::string BinDir() {
  if (const char* dir = std::getenv("CAIRN_BIN_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::filesystem::canonical("/proc/self/exe").parent_path().string();
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "cairn-test-XXXXXX").string();
  char* made = mkdtemp(pattern.data());
  path_ = made != nullptr ? made : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                                  const std::string& output_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return nullptr;
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, output_file));
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    ::kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
}

void ChildProcess::Signal(int signal) {
  if (!exit_code_) ::kill(pid_, signal);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  return std::nullopt;
}

bool ChildProcess::Running() { return !Wait(std::chrono::milliseconds(0)).has_value(); }

std::string ChildProcess::Output() const {
  std::ifstream in(output_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ChildProcess::WaitForOutput(const std::string& text, std::chrono::milliseconds timeout) const {
  return Eventually([&] { return Output().find(text) != std::string::npos; }, timeout);
}

std::pair<int, std::string> RunCommand(const std::vector<std::string>& argv,
                                       std::chrono::milliseconds timeout) {
  TempDir dir;
  auto child = ChildProcess::Start(argv, dir.File("out"));
  if (!child) return {-1, "cannot start " + argv[0]};
  auto code = child->Wait(timeout);
  if (!code) {
    child->Signal(SIGKILL);
    child->Wait(std::chrono::seconds(5));
    return {-2, child->Output() + "\n(timed out)"};
  }
  return {*code, child->Output()};
}

RegistryProcess::RegistryProcess(std::vector<std::string> extra_flags)
    : extra_flags_(std::move(extra_flags)) {}

RegistryProcess::~RegistryProcess() { Stop(SIGKILL); }

uint16_t RegistryProcess::grpc_port() const {
  return static_cast<uint16_t>(std::stoi(grpc_address_.substr(grpc_address_.rfind(':') + 1)));
}

bool RegistryProcess::Start(uint16_t grpc_port) {
  std::string ready = dir_.File("ready");
  std::filesystem::remove(ready);
  std::vector<std::string> argv = {
      BinDir() + "/cairn", "registry",    "--listen",   "127.0.0.1:" + std::to_string(grpc_port),
      "--admin",           "127.0.0.1:0", "--data-dir", dir_.File("data"),
      "--ready-file",      ready};
  argv.insert(argv.end(), extra_flags_.begin(), extra_flags_.end());
  process_ = ChildProcess::Start(argv, dir_.File("log-" + std::to_string(starts_++)));
  if (!process_) return false;
  bool ok = Eventually([&] { return std::filesystem::exists(ready) || !process_->Running(); },
                       std::chrono::seconds(20));
  if (!ok || !std::filesystem::exists(ready)) return false;
  std::ifstream in(ready);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("grpc=", 0) == 0) grpc_address_ = line.substr(5);
    if (line.rfind("admin=", 0) == 0) admin_address_ = line.substr(6);
  }
  return !grpc_address_.empty() && !admin_address_.empty();
}

std::optional<int> RegistryProcess::Stop(int signal) {
  if (!process_) return std::nullopt;
  process_->Signal(signal);
  if (auto code = process_->Wait(std::chrono::seconds(10))) return code;
  process_->Signal(SIGKILL);
  process_->Wait(std::chrono::seconds(10));
  return std::nullopt;
}

bool RegistryProcess::Restart() {
  uint16_t port = grpc_port();
  if (Stop(SIGTERM) != 0) return false;
  return Start(port);
}

}  // namespace cairn::testing

namespace cairn::testing {
namespace {

std::map<std::string, std::string> ReadKeyValues(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

bool WaitForFile(const std::string& path, ChildProcess& process) {
  return Eventually([&] { return std::filesystem::exists(path) || !process.Running(); },
                    std::chrono::seconds(20)) &&
         std::filesystem::exists(path);
}

}  // namespace

bool BackendProcess::Start(uint16_t port) {
  std::string ready = dir_.File("ready");
  std::filesystem::remove(ready);
  process_ = ChildProcess::Start({BinDir() + "/" + program_, "--name", name_, "--port",
                                  std::to_string(port), "--ready-file", ready},
                                 dir_.File("log"));
  if (!process_ || !WaitForFile(ready, *process_)) return false;
  port_ = static_cast<uint16_t>(std::stoi(ReadKeyValues(ready)["port"]));
  return port_ != 0;
}

std::optional<int> BackendProcess::Stop(int signal) {
  if (!process_) return std::nullopt;
  process_->Signal(signal);
  return process_->Wait(std::chrono::seconds(10));
}

SidecarProcess::~SidecarProcess() { Stop(SIGKILL); }

bool SidecarProcess::Start() {
  std::string config_path = dir_.File("sidecar.yaml");
  std::ofstream(config_path) << config_;
  std::string ready = dir_.File("ready");
  process_ = ChildProcess::Start(
      {BinDir() + "/cairn", "sidecar", "--config", config_path, "--ready-file", ready},
      dir_.File("log"));
  if (!process_ || !WaitForFile(ready, *process_)) return false;
  for (const auto& [key, value] : ReadKeyValues(ready)) {
    if (key == "admin") admin_ = value;
    if (key.rfind("listener.", 0) == 0) listeners_[key.substr(9)] = value;
  }
  return !admin_.empty();
}

std::optional<int> SidecarProcess::Stop(int signal) {
  if (!process_) return std::nullopt;
  process_->Signal(signal);
  if (auto code = process_->Wait(std::chrono::seconds(15))) return code;
  process_->Signal(SIGKILL);
  process_->Wait(std::chrono::seconds(10));
  return std::nullopt;
}

std::string SidecarProcess::listener(const std::string& name) const {
  auto it = listeners_.find(name);
  return it == listeners_.end() ? "" : it->second;
}

}  // namespace cairn::testing
