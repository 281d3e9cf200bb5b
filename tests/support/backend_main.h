// The process around a test backend (cairn_test_bolt_backend,
// cairn_test_dubbo_backend): flags --name, --port (0: the OS picks),
// --ready-file (written as "port=N" once listening, renamed into place), a
// listener on 127.0.0.1 whose accepted sockets each become a
// `Session(socket, name)` that is Start()ed, and SIGINT / SIGTERM to stop.
// A backend writes only its Session.
#pragma once

#include <asio.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

namespace cairn::testing {

template <typename Session>
void AcceptSessions(asio::ip::tcp::acceptor& acceptor, const std::string& name) {
  acceptor.async_accept([&acceptor, &name](std::error_code ec, asio::ip::tcp::socket socket) {
    if (!ec) {
      socket.set_option(asio::ip::tcp::no_delay(true));
      std::make_shared<Session>(std::move(socket), name)->Start();
    }
    if (acceptor.is_open()) AcceptSessions<Session>(acceptor, name);
  });
}

// Runs the backend until a signal; the process's exit status.
template <typename Session>
int RunBackend(int argc, char** argv, std::string name) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string ready_file;
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--name") name = argv[i + 1];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--ready-file") ready_file = argv[i + 1];
  }
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io);
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                                         static_cast<uint16_t>(port));
  std::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "cannot listen: %s\n", ec.message().c_str());
    return 1;
  }
  AcceptSessions<Session>(acceptor, name);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  if (!ready_file.empty()) {
    std::ofstream(ready_file + ".tmp") << "port=" << acceptor.local_endpoint().port() << "\n";
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }
  io.run();
  return 0;
}

}  // namespace cairn::testing
