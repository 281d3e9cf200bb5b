// Channel settings shared by every gRPC server that carries the registry's
// Session streams (standalone, and cluster mode's session role).
#pragma once

#include <grpcpp/grpcpp.h>

namespace cairn {

// Lets clients keep idle streams alive with HTTP/2 pings, and finds dead
// clients on our side too.
inline void ConfigureRegistryServer(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
}

}  // namespace cairn
