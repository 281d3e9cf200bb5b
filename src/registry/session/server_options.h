// Channel settings shared by every gRPC server that carries the registry's
// Session streams (standalone, and cluster mode's session role).
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>

namespace cairn {

// What one connection may hold (RegistryConfig keys of the same names;
// docs/security.md, "Limits"). 0 leaves gRPC's default.
struct RegistryConnectionLimits {
  // The TLS and HTTP/2 handshakes must be done within this long (gRPC's
  // default is 120 s, so a client that connects and sends nothing held a
  // connection and its buffers for two minutes).
  uint32_t handshake_timeout_ms = 0;
  // A connection with no call open for this long gets GOAWAY and closes.
  // Clients hold their Session stream for as long as they live; a connection
  // without one is a client between streams, a finished cairnctl, or one
  // holding a socket for nothing.
  uint32_t max_connection_idle_ms = 0;
  // Concurrent calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
  uint32_t max_streams_per_connection = 0;
};

// Lets clients keep idle streams alive with HTTP/2 pings, finds dead clients
// on our side too, and applies `limits`.
inline void ConfigureRegistryServer(grpc::ServerBuilder& builder,
                                    const RegistryConnectionLimits& limits) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto set = [&builder](const char* arg, uint32_t value) {
    if (value != 0) builder.AddChannelArgument(arg, static_cast<int>(value));
  };
  set(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, limits.handshake_timeout_ms);
  set(GRPC_ARG_MAX_CONNECTION_IDLE_MS, limits.max_connection_idle_ms);
  set(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_connection);
}

}  // namespace cairn
