#include "anchor_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace cairn::bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// What the guard thread must clean up if the run is interrupted.
struct Live {
  std::mutex mu;
  std::set<pid_t> children;
  std::set<std::string> dirs;
  std::vector<void (*)()> exit_hooks;
};

Live& live() {
  static Live* l = new Live();  // never destroyed: the guard may use it during exit
  return *l;
}

// Stops every live child (SIGTERM, then SIGKILL after 5 s), removes the scratch
// directories and exits. Runs on the guard thread; holds the lock to the end
// so that no new child can be started meanwhile.
[[noreturn]] void CleanupAndExit(const char* why, int code) {
  std::lock_guard lock(live().mu);
  for (auto hook : live().exit_hooks) hook();
  std::cerr << "\nregistry bench: " << why << "; stopping " << live().children.size()
            << " server process(es)\n";
  for (pid_t pid : live().children) ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + seconds(5);
  std::set<pid_t> left = live().children;
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = left.begin(); it != left.end();) {
      pid_t r = waitpid(*it, nullptr, WNOHANG);
      // ECHILD: someone else reaped it already.
      it = (r == *it || (r < 0 && errno == ECHILD)) ? left.erase(it) : std::next(it);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  for (pid_t pid : left) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  for (const auto& dir : live().dirs) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::cerr.flush();
  std::fflush(stdout);
  _exit(code);
}

int64_t ParseVmRss(std::istream& in) {
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

// Polls `ready` every 100 ms until it holds, the process exits or `timeout`
// passes.
template <typename Ready>
bool WaitReady(ServerProcess& process, Ready ready, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    if (!process.Running()) return false;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return ready();
}

bool LogSaysPortTaken(const ServerProcess& process) {
  std::string log = process.LogTail(20000);
  return log.find("address already in use") != std::string::npos ||
         log.find("Address already in use") != std::string::npos;
}

}  // namespace

void StartGuard(seconds time_limit) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, time_limit] {
    auto deadline = std::chrono::steady_clock::now() + time_limit;
    while (true) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= milliseconds(0)) {
        CleanupAndExit(absl::StrCat("time limit of ", time_limit.count(), " s reached").c_str(), 3);
      }
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      siginfo_t info;
      int sig = sigtimedwait(&set, &info, &ts);
      if (sig > 0) CleanupAndExit(strsignal(sig), 128 + sig);
    }
  }).detach();
}

void AddGuardExitHook(void (*hook)()) {
  std::lock_guard lock(live().mu);
  live().exit_hooks.push_back(hook);
}

ScratchDir::ScratchDir(const std::string& tag, const std::string& base) {
  std::filesystem::path parent =
      base.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(base);
  std::string pattern = (parent / ("cairn-regbench-" + tag + "-XXXXXX")).string();
  const char* made = mkdtemp(pattern.data());
  path_ = made != nullptr ? made : "";
  std::lock_guard lock(live().mu);
  if (!path_.empty()) live().dirs.insert(path_);
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  std::lock_guard lock(live().mu);
  live().dirs.erase(path_);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_file) {
  // Everything the child needs is prepared before fork: between fork and exec
  // only async-signal-safe calls are allowed in a multi-threaded process.
  int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) {
    if (log_fd >= 0) ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return absl::InternalError(absl::StrCat("cannot open ", log_file, ": ", strerror(errno)));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();

  std::lock_guard lock(live().mu);  // the guard must see every child it could miss
  pid_t pid = fork();
  if (pid == 0) {
    // Dies with the bench even when the bench is SIGKILLed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the bench died before prctl
    // Its own process group: a terminal's Ctrl-C reaches the bench only, which
    // then stops the servers in order.
    setpgid(0, 0);
    // The guard blocks these in the bench; a server must get them normally.
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(fork_errno)));
  live().children.insert(pid);
  return std::unique_ptr<ServerProcess>(new ServerProcess(pid, log_file));
}

ServerProcess::~ServerProcess() { Stop(); }

std::optional<int> ServerProcess::Wait(milliseconds timeout) {
  if (exit_status_) return exit_status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      exit_status_ = r == pid_ && WIFEXITED(status) ? WEXITSTATUS(status)
                     : r == pid_                    ? 128 + WTERMSIG(status)
                                                    : -1;
      std::lock_guard lock(live().mu);
      live().children.erase(pid_);
      return exit_status_;
    }
    std::this_thread::sleep_for(milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  return std::nullopt;
}

std::optional<int> ServerProcess::Stop(milliseconds grace) {
  if (exit_status_) return exit_status_;
  ::kill(pid_, SIGTERM);
  auto begin = std::chrono::steady_clock::now();
  if (auto status = Wait(grace)) {
    auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - begin);
    // Worth knowing: a slow shutdown is a bug or a cost of its own.
    if (took > seconds(2)) {
      std::cerr << "registry bench: pid " << pid_ << " took " << took.count()
                << " ms to exit after SIGTERM\n";
    }
    return status;
  }
  std::cerr << "registry bench: pid " << pid_ << " ignored SIGTERM for " << grace.count()
            << " ms; sending SIGKILL\n";
  ::kill(pid_, SIGKILL);
  return Wait(seconds(10));
}

bool ServerProcess::Running() { return !Wait(milliseconds(0)).has_value(); }

int64_t ServerProcess::RssBytes() const { return exit_status_ ? 0 : ProcessRssBytes(pid_); }

std::string ServerProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_file_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

int64_t ProcessRssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  return ParseVmRss(in);
}

std::vector<uint16_t> FreePorts(int count) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  // All sockets stay bound until every port is known, so the ports differ.
  for (int i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

absl::StatusOr<std::string> TcpExchange(uint16_t port, const std::string& request,
                                        milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    auto ms = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, ms.count()));
  };
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::string reply;
  absl::Status status = absl::OkStatus();
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    status = absl::UnavailableError(strerror(errno));
  }
  pollfd p{fd, POLLOUT, 0};
  if (status.ok() && (::poll(&p, 1, left_ms()) != 1 || (p.revents & (POLLERR | POLLHUP)))) {
    status = absl::UnavailableError("connect failed");
  }
  if (status.ok() && ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
                         static_cast<ssize_t>(request.size())) {
    status = absl::UnavailableError("send failed");
  }
  while (status.ok()) {
    p = {fd, POLLIN, 0};
    if (::poll(&p, 1, left_ms()) != 1) break;  // timeout: return what came
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!status.ok()) return status;
  return reply;
}

// ---------------------------------------------------------------- etcd

// tmpfs: what the durability-equal variants write to.
constexpr const char* kMemoryDir = "/dev/shm";

EtcdServer::EtcdServer(bool in_memory) : in_memory_(in_memory) {}
EtcdServer::~EtcdServer() { Stop(); }

absl::Status EtcdServer::Start() {
  absl::Status last = absl::UnavailableError("not started");
  // Free ports can be taken by someone else before etcd binds them: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    Stop();
    dir_ = std::make_unique<ScratchDir>("etcd", in_memory_ ? kMemoryDir : "");
    auto ports = FreePorts(2);
    if (ports.size() != 2) return absl::UnavailableError("no free ports");
    client_port_ = ports[0];
    std::string client = absl::StrCat("http://127.0.0.1:", ports[0]);
    std::string peer = absl::StrCat("http://127.0.0.1:", ports[1]);
    std::vector<std::string> argv = {"/usr/bin/etcd",
                                     "--name=bench",
                                     "--data-dir=" + dir_->File("data"),
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=bench=" + peer,
                                     "--logger=zap",
                                     "--log-outputs=stderr",
                                     "--log-level=warn"};
    auto process = ServerProcess::Start(argv, dir_->File("log"));
    if (!process.ok()) return process.status();
    process_ = std::move(*process);
    const std::string health =
        absl::StrCat("GET /health HTTP/1.0\r\nHost: 127.0.0.1:", client_port_, "\r\n\r\n");
    bool ready = WaitReady(
        *process_,
        [&] {
          auto reply = TcpExchange(client_port_, health, milliseconds(1000));
          return reply.ok() && reply->find("\"health\":\"true\"") != std::string::npos;
        },
        seconds(30));
    if (ready) return absl::OkStatus();
    last = absl::UnavailableError(
        absl::StrCat("etcd did not become healthy in 30 s; log:\n", process_->LogTail()));
    if (!LogSaysPortTaken(*process_)) break;
  }
  Stop();
  return last;
}

void EtcdServer::Stop() {
  process_.reset();  // SIGTERM, SIGKILL after 10 s
  dir_.reset();
}

bool EtcdServer::Running() const { return process_ && process_->RssBytes() > 0; }
int64_t EtcdServer::RssBytes() const { return process_ ? process_->RssBytes() : 0; }
std::string EtcdServer::LogTail() const { return process_ ? process_->LogTail() : ""; }

// ---------------------------------------------------------------- ZooKeeper

ZooKeeperServer::ZooKeeperServer(std::string heap, bool in_memory)
    : heap_(std::move(heap)), in_memory_(in_memory) {}
ZooKeeperServer::~ZooKeeperServer() { Stop(); }

absl::Status ZooKeeperServer::Start() {
  absl::Status last = absl::UnavailableError("not started");
  for (int attempt = 0; attempt < 3; ++attempt) {
    Stop();
    dir_ = std::make_unique<ScratchDir>("zookeeper", in_memory_ ? kMemoryDir : "");
    auto ports = FreePorts(1);
    if (ports.size() != 1) return absl::UnavailableError("no free port");
    port_ = ports[0];
    {
      std::ofstream cfg(dir_->File("zoo.cfg"));
      // maxClientCnxns=0: the bench opens more than the default 60 sessions
      // from one address. ruok must be allowed explicitly since 3.5.
      cfg << "tickTime=2000\n"
          << "dataDir=" << dir_->File("data") << "\n"
          << "clientPort=" << port_ << "\n"
          << "clientPortAddress=127.0.0.1\n"
          << "maxClientCnxns=0\n"
          << "admin.enableServer=false\n"
          << "4lw.commands.whitelist=ruok,srvr\n";
      // dataLogDir: the transaction log, what forceSync governs (it would
      // default to dataDir; named so that both are visibly on tmpfs).
      if (in_memory_)
        cfg << "dataLogDir=" << dir_->File("log-data") << "\n"
            << "forceSync=no\n";
      if (!cfg) return absl::InternalError("cannot write zoo.cfg");
    }
    // -XX:-UsePerfData: no hsperfdata file left in /tmp if the JVM is killed.
    std::vector<std::string> argv = {
        "/usr/bin/java",
        "-Xmx" + heap_,
        "-XX:-UsePerfData",
        "-Djava.io.tmpdir=" + dir_->path(),
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        dir_->path() + ":/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        dir_->File("zoo.cfg")};
    auto process = ServerProcess::Start(argv, dir_->File("log"));
    if (!process.ok()) return process.status();
    process_ = std::move(*process);
    bool ready = WaitReady(
        *process_,
        [&] {
          // imok only says the process is up: the listener answers before the
          // database is loaded, and sessions opened then are dropped. srvr
          // reports a Mode once the server serves requests.
          auto ok = TcpExchange(port_, "ruok", milliseconds(1000));
          if (!ok.ok() || *ok != "imok") return false;
          auto srvr = TcpExchange(port_, "srvr", milliseconds(1000));
          return srvr.ok() && srvr->find("Mode:") != std::string::npos;
        },
        seconds(60));
    if (ready) return absl::OkStatus();
    last = absl::UnavailableError(absl::StrCat(
        "ZooKeeper did not answer ruok and srvr in 60 s; log:\n", process_->LogTail()));
    if (!LogSaysPortTaken(*process_)) break;
  }
  Stop();
  return last;
}

void ZooKeeperServer::Stop() {
  process_.reset();
  dir_.reset();
}

bool ZooKeeperServer::Running() const { return process_ && process_->RssBytes() > 0; }
int64_t ZooKeeperServer::RssBytes() const { return process_ ? process_->RssBytes() : 0; }
std::string ZooKeeperServer::LogTail() const { return process_ ? process_->LogTail() : ""; }

}  // namespace cairn::bench
