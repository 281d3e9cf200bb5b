// gRPC's own log lines, through spdlog, with failed TLS handshakes summed up.
//
// gRPC logs every failed TLS handshake at ERROR ("Handshake failed with fatal
// error SSL_ERROR_SSL: ...certificate verify failed"). A client without a
// valid certificate retries several times a second, and a hostile one can
// make thousands of attempts: one line each would let anyone who can reach
// the port fill the disk. So such lines are logged at most once per
// kHandshakeLogPeriod, with the number left out since the last one; every
// other gRPC line is passed on as it is.
//
// Thread-safety: the log function is called by gRPC from any thread; its
// state is behind a mutex. Install once, before the first server or channel.
#pragma once

#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

namespace cairn {

inline constexpr std::chrono::seconds kHandshakeLogPeriod{10};

namespace grpc_log_internal {

struct HandshakeLogState {
  std::mutex mu;
  std::chrono::steady_clock::time_point last{};
  uint64_t suppressed = 0;
};

inline HandshakeLogState& State() {
  static HandshakeLogState state;
  return state;
}

inline void LogToSpdlog(gpr_log_func_args* args) {
  const char* message = args->message != nullptr ? args->message : "";
  if (std::strstr(message, "Handshake failed") != nullptr) {
    HandshakeLogState& s = State();
    uint64_t left_out = 0;
    {
      std::lock_guard lock(s.mu);
      auto now = std::chrono::steady_clock::now();
      if (s.last != std::chrono::steady_clock::time_point{} && now - s.last < kHandshakeLogPeriod) {
        ++s.suppressed;
        return;
      }
      s.last = now;
      left_out = s.suppressed;
      s.suppressed = 0;
    }
    spdlog::warn("TLS handshake refused (a client without a valid certificate?): {}{}", message,
                 left_out == 0 ? std::string()
                               : " (" + std::to_string(left_out) +
                                     " more failed handshakes since the last such line)");
    return;
  }
  switch (args->severity) {
    case GPR_LOG_SEVERITY_ERROR:
      spdlog::error("grpc {}:{}: {}", args->file, args->line, message);
      break;
    case GPR_LOG_SEVERITY_INFO:
      spdlog::info("grpc {}:{}: {}", args->file, args->line, message);
      break;
    default:
      spdlog::debug("grpc {}:{}: {}", args->file, args->line, message);
      break;
  }
}

}  // namespace grpc_log_internal

inline void RouteGrpcLogsToSpdlog() { gpr_set_log_function(grpc_log_internal::LogToSpdlog); }

}  // namespace cairn
