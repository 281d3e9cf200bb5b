#include "etcd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace cairn::testing {

std::vector<uint16_t> FreeLoopbackPorts(int count) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (int i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    fds.push_back(fd);  // kept open until all are chosen, so they differ
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (static_cast<int>(ports.size()) != count) ports.clear();
  return ports;
}

pid_t SpawnTiedToParent(const std::vector<std::string>& argv, const std::string& output_file) {
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls (the test process has gRPC threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    int out = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || in < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

namespace {

// GET /health on host:port; true when etcd reports itself healthy.
bool HealthCheck(const std::string& host, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    return false;
  }
  std::string reply;
  bool ok =
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 || errno == EINPROGRESS;
  pollfd p{fd, POLLOUT, 0};
  ok = ok && ::poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT) != 0;
  const std::string request = "GET /health HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  ok = ok && ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                 static_cast<ssize_t>(request.size());
  for (int i = 0; ok && i < 20; ++i) {
    p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) break;
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply.find("\"health\":\"true\"") != std::string::npos;
}

}  // namespace

EtcdProcess::EtcdProcess() = default;

EtcdProcess::~EtcdProcess() { Stop(SIGKILL); }

bool EtcdProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

bool EtcdProcess::Launch() {
  const std::string client = url();
  const std::string peer = "http://" + host_ + ":" + std::to_string(peer_port_);
  std::vector<std::string> argv = command_prefix_;
  argv.insert(argv.end(), {"/usr/bin/etcd", "--name=test", "--data-dir=" + dir_.File("data"),
                           "--listen-client-urls=" + client, "--advertise-client-urls=" + client,
                           "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
                           "--initial-cluster=test=" + peer, "--logger=zap", "--log-outputs=stderr",
                           "--log-level=warn"});
  if (tls()) {
    argv.insert(argv.end(), {"--cert-file=" + tls_.cert_file, "--key-file=" + tls_.key_file});
    if (!tls_.client_ca_file.empty()) {
      argv.insert(argv.end(), {"--trusted-ca-file=" + tls_.client_ca_file, "--client-cert-auth"});
    }
  }
  pid_ = SpawnTiedToParent(argv, dir_.File("log-" + std::to_string(starts_++)));
  if (pid_ <= 0) return false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return false;
    if (tls() ? HealthCheckTls() : HealthCheck(host_, client_port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool EtcdProcess::HealthCheckTls() const {
  std::vector<std::string> argv = {"/usr/bin/curl", "-s", "--max-time", "2"};
  if (!tls_.client_ca_file.empty()) argv.insert(argv.end(), {"--cacert", tls_.client_ca_file});
  if (!tls_.client_cert_file.empty()) {
    argv.insert(argv.end(), {"--cert", tls_.client_cert_file, "--key", tls_.client_key_file});
  }
  argv.push_back(url() + "/health");
  auto [code, output] = RunCommand(argv, std::chrono::seconds(5));
  return code == 0 && output.find("\"health\":\"true\"") != std::string::npos;
}

void EtcdProcess::Place(std::vector<std::string> command_prefix, std::string host) {
  command_prefix_ = std::move(command_prefix);
  host_ = std::move(host);
}

bool EtcdProcess::Start() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    Stop(SIGKILL);
    auto ports = FreeLoopbackPorts(2);
    if (ports.size() != 2) continue;
    client_port_ = ports[0];
    peer_port_ = ports[1];
    std::error_code ec;
    std::filesystem::remove_all(dir_.File("data"), ec);
    if (Launch()) return true;
  }
  Stop(SIGKILL);
  return false;
}

bool EtcdProcess::Restart() {
  Stop(SIGTERM);
  return Launch();
}

void EtcdProcess::Stop(int signal) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);  // a paused etcd cannot act on SIGTERM
  ::kill(pid_, signal);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void EtcdProcess::Pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void EtcdProcess::Resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string EtcdProcess::Log() const {
  std::stringstream out;
  for (int i = 0; i < starts_; ++i) {
    std::ifstream in(dir_.File("log-" + std::to_string(i)));
    out << in.rdbuf();
  }
  return out.str();
}

}  // namespace cairn::testing
