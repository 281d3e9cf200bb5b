// gRPC settings of the channels between cluster roles: sessions to data
// servers (Apply, Fetch, Watch) and data servers to each other (Replicate,
// FetchSlot).
//
// Why not gRPC's defaults:
//   * Reconnect backoff. By default a channel whose server went away retries
//     after 1 s, then 1.6x longer each time, up to 2 minutes. A data server
//     that restarts within its lease would then wait seconds for the
//     sessions' SlotSyncs, and its slots stay unserved meanwhile. Here a
//     channel retries within 100 ms to 1 s.
//   * Keepalive. A Watch stream that a one-way partition stalls stays "open"
//     for ever without pings: the session would hear no change notice and
//     the data server would think the session still watches. Both ends ping
//     every 2 s and give the connection up after 2 s without an answer.
//
// TLS: with `credentials` from MakeChannelCredentials(config.tls) a peer
// presents this server's certificate and must present one chaining to the
// same CA (its server requires client certificates); null means plaintext.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace cairn::cluster {

inline constexpr int kPeerKeepaliveMs = 2000;

inline std::shared_ptr<grpc::Channel> NewPeerChannel(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials = nullptr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kPeerKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kPeerKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(
      address, credentials ? credentials : grpc::InsecureChannelCredentials(), args);
}

// The data server's side: accept the sessions' pings, and ping them too.
inline void ConfigurePeerServer(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kPeerKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kPeerKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

}  // namespace cairn::cluster
