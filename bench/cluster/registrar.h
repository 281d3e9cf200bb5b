// The registration load of bench/cluster: `connections` Session streams
// (each its own TCP connection, spread round-robin over the given servers),
// each keeping `window` publishes in flight until it has made its share of
// `instances` publishers of ~100 bytes, through the client library's
// SessionStream (which batches what is queued). The same code drives a
// standalone registry and a cluster's sessions, so the two rates compare.
// The streams stay open (the publishers live) until Close().
//
// Thread-safety: Run and Close from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cairn::bench {

struct RegisterResult {
  int64_t accepted = 0;
  int64_t failed = 0;
  double seconds = 0;
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

class Registrar {
 public:
  Registrar(std::vector<std::string> servers, int connections, int window);
  ~Registrar();  // Close()

  // Publishes `instances` publishers spread over `services` services, with
  // registration ids unique to this Registrar's `tag`. Blocks until every
  // publish was answered or `timeout` passed.
  RegisterResult Run(int64_t instances, int services, const std::string& tag,
                     std::chrono::seconds timeout);
  // Ends every stream (the servers then drop the publishers).
  void Close();

 private:
  struct Conn;
  std::vector<std::string> servers_;
  int connections_;
  int window_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace cairn::bench
