// Internal to src/coord: the gRPC stubs behind EtcdClient, shared by
// etcd_client.cc and etcd_streams.cc. Not part of the interface.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "coord/etcd_client.h"
#include "etcdv3/rpc_subset.grpc.pb.h"

namespace cairn::coord {

struct EtcdClient::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
};

// "etcd <method>: <message>" with the gRPC code.
inline absl::Status EtcdError(const char* method, const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      std::string("etcd ") + method + ": " + status.error_message());
}

inline void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

inline KeyValue FromProto(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(),          kv.value(),   kv.create_revision(),
                  kv.mod_revision(), kv.version(), kv.lease()};
}

}  // namespace cairn::coord
