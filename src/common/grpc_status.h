// Conversions between absl::Status and grpc::Status. The codes share numbers
// (both follow google.rpc.Code), so the mapping is a cast.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace cairn {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace cairn
