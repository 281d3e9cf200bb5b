// Helpers shared by the cairnctl commands: exit codes, error printing, JSON
// and table output, unary RPCs with server failover, signal waiting.
//
// Thread safety: the functions are safe to call from any thread except where
// noted; output functions write whole lines and flush, so callers printing
// from several threads should serialize themselves.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "cairn/registry/v1/registry.grpc.pb.h"
#include "cairn/registry/v1/registry.pb.h"
#include "common/grpc_tls.h"
#include "google/protobuf/message.h"

namespace cairn::cli {

namespace pb = ::cairn::registry::v1;

// Process exit codes (documented in `cairnctl --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the server (or local validation) refused
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitNothing = 3;      // subscribe --timeout passed without a push
inline constexpr int kExitUnreachable = 4;  // no server answered in time

// Flags every command has.
struct GlobalFlags {
  std::vector<std::string> servers;  // already split at commas
  std::string output = "table";      // "table" or "json"
  // --cacert/--cert/--key: TLS to the registry (or to etcd for the cluster
  // commands), as etcdctl names them. Off when none is given.
  TlsFiles tls;
  bool json() const { return output == "json"; }
};

// Prints "error: <CODE_NAME>: <message>" to stderr and returns the exit code
// for `status` (UNAVAILABLE and DEADLINE_EXCEEDED mean unreachable).
int ReportError(const absl::Status& status);

pb::DataInfoKey MakeKey(const std::string& data_id, const std::string& group,
                        const std::string& instance_id);
// "data_id#@#instance_id#@#group" with defaults filled in.
std::string KeyText(const pb::DataInfoKey& key);

// One-line JSON with proto field names and all primitive fields.
std::string ToJson(const google::protobuf::Message& message);

// Writes `line` and a newline to stdout and flushes (readers use pipes).
void PrintLine(const std::string& line);

// Prints rows as aligned columns; rows[0] is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// Adds to an UNAVAILABLE or DEADLINE_EXCEEDED status what TLS setting may be
// the cause (a registry that wants TLS, or refused our certificate), since
// gRPC reports a failed handshake only as "failed to connect".
absl::Status ExplainConnectFailure(const absl::Status& status, const TlsFiles& tls);

// Runs `call` against each of global.servers in turn (with global.tls) until
// one is reachable (the status is not UNAVAILABLE). Each attempt has its own
// deadline of `timeout`.
absl::Status CallUnary(
    const GlobalFlags& global, std::chrono::milliseconds timeout,
    const std::function<grpc::Status(pb::Registry::Stub&, grpc::ClientContext&)>& call);

// The same for a service other than Registry: `call` makes its own stub on
// the channel it is given.
absl::Status CallUnaryOnChannel(
    const GlobalFlags& global, std::chrono::milliseconds timeout,
    const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&, grpc::ClientContext&)>&
        call);

// Blocks SIGINT and SIGTERM in the calling thread and in every thread it
// creates afterwards, so that WaitForSignal() can receive them. Call first
// thing in main(), before any thread exists.
void BlockTerminationSignals();

// Waits up to `timeout` for SIGINT/SIGTERM; returns true if one arrived.
bool WaitForSignal(std::chrono::milliseconds timeout);

}  // namespace cairn::cli
