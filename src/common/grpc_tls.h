// TLS for Cairn's gRPC ports (registry clients, cluster RPCs, etcd): file
// paths in, gRPC credentials out, and the identity of the peer of a call.
//
// Certificates are read by a gRPC file watcher: replacing the files (cert and
// key together, e.g. by rename) takes effect for new connections within
// `refresh_interval_s`, without a restart and without touching open ones.
//
// Thread-safe free functions.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/identity.h"

namespace cairn {

struct TlsFiles {
  std::string cert_file;  // PEM certificate chain of this process
  std::string key_file;   // PEM private key of cert_file
  std::string ca_file;    // PEM CA bundle the peer's certificate must chain to
  // Server side: refuse a client without a certificate signed by ca_file.
  // Client side: unused (a client always verifies the server).
  bool require_client_cert = true;
  uint32_t refresh_interval_s = 5;

  // TLS is on when any of the files is named; Validate() then wants the set
  // a side needs.
  bool enabled() const { return !cert_file.empty() || !key_file.empty() || !ca_file.empty(); }
};

// Checks that the files exist, parse as PEM, and that the key matches the
// certificate. `server`: cert and key are required (and ca_file when client
// certificates are required); client: ca_file is required, and cert and key
// come together or not at all. Errors name the file and what is wrong.
absl::Status ValidateTlsFiles(const TlsFiles& files, bool server);

// Server credentials for `files` (Validate()d here too), or insecure
// credentials when TLS is off.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// Channel credentials for `files`, or insecure ones when TLS is off. The
// server's certificate must chain to ca_file and name the host dialled.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

// The identity the peer of a call proved (authenticated only over TLS with a
// verified client certificate).
Identity PeerIdentity(const grpc::AuthContext& context);

// The identity the first certificate in `cert_file` names, as a peer that
// verified it would see it (URI SANs and subject CN).
absl::StatusOr<Identity> CertificateFileIdentity(const std::string& cert_file);

// Makes `credentials` refuse, with PERMISSION_DENIED and before any handler
// runs, every call whose peer did not prove `peer` (Identity::Name(): its
// SPIFFE id, else "cn=<CN>"). For ports that only Cairn's own servers call,
// where a certificate from the same CA is not enough (an app has one too).
void RequirePeer(grpc::ServerCredentials& credentials, std::string peer);

}  // namespace cairn
