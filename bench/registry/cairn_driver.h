// Cairn-only parts of the bench beyond the System interface (driver.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"

namespace cairn::bench {

// One TCP connection per channel: the default global subchannel pool would
// multiplex every "connection" to one target onto a single socket.
std::shared_ptr<grpc::Channel> NewDedicatedChannel(
    const std::string& target,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials());

// The gRPC floor of this machine: a unary call the Cairn server answers
// without touching any registration (ListDataInfos with a prefix nothing
// matches), from `threads` threads each on its own connection, for
// `duration`. The register workload reports it as system `grpc-direct`.
// Over mTLS (SystemOptions::tls_dir) it presents the admin certificate, as
// ListDataInfos is an admin-only query there.
struct UnaryFloor {
  double calls_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t errors = 0;
};
UnaryFloor MeasureUnaryFloor(const std::string& cairn_address, int threads,
                             std::chrono::milliseconds duration);

}  // namespace cairn::bench
