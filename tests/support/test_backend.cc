// cairn_test_backend: a small real HTTP/1.1 server for the sidecar's
// integration tests and benchmarks, built on the project's admin HTTP server.
//
//   cairn_test_backend --name NAME [--port P] [--ready-file F]
//
// Routes (GET or POST):
//   /            200, body "NAME\n"
//   /echo        200, body = request body; echoes x-test-* headers back
//   /status      status from ?code=NNN, body "NAME NNN\n"
//   /slow        answers after ?ms=N milliseconds (bounded to 30 s)
//   /health      200 "ok"
//   /big         ?bytes=N of 'x' (bounded to 16 MiB)
// Writes "port=P" to the ready file once listening. Stops on SIGTERM/SIGINT.
#include <signal.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "core/http/admin_http_server.h"

namespace {

std::string Param(const cairn::http::Request& r, const std::string& name, const std::string& def) {
  auto it = r.query.find(name);
  return it == r.query.end() ? def : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "backend", ready_file;
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--name") name = argv[i + 1];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--ready-file") ready_file = argv[i + 1];
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  cairn::http::AdminHttpServer::Options options;
  options.port = static_cast<uint16_t>(port);
  options.max_body_bytes = 16 << 20;
  options.max_connections = 4096;
  cairn::http::AdminHttpServer server(options);
  auto text = [](int status, std::string body) {
    cairn::http::Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  };
  for (const char* method : {"GET", "POST"}) {
    server.Handle(method, "/", [&](const cairn::http::Request&) { return text(200, name + "\n"); });
    server.Handle(method, "/health",
                  [&](const cairn::http::Request&) { return text(200, "ok\n"); });
    server.Handle(method, "/echo", [&](const cairn::http::Request& r) {
      auto response = text(200, r.body);
      for (const auto& [k, v] : r.headers) {
        std::string lower = k;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower.rfind("x-test-", 0) == 0) response.headers.emplace_back(lower, v);
      }
      response.headers.emplace_back("x-backend", name);
      return response;
    });
    server.Handle(method, "/status", [&](const cairn::http::Request& r) {
      int code = std::atoi(Param(r, "code", "200").c_str());
      if (code < 200 || code > 599) code = 500;
      return text(code, name + " " + std::to_string(code) + "\n");
    });
    server.Handle(method, "/slow", [&](const cairn::http::Request& r) {
      int ms = std::min(std::atoi(Param(r, "ms", "1000").c_str()), 30000);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return text(200, name + " slow\n");
    });
    server.Handle(method, "/big", [&](const cairn::http::Request& r) {
      size_t bytes = std::min<size_t>(std::strtoull(Param(r, "bytes", "1024").c_str(), nullptr, 10),
                                      16u << 20);
      return text(200, std::string(bytes, 'x'));
    });
  }
  if (auto s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "cannot listen: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (!ready_file.empty()) {
    std::ofstream(ready_file + ".tmp") << "port=" << server.port() << "\n";
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }
  int sig = 0;
  sigwait(&stop, &sig);
  server.Stop();
  return 0;
}
