// RegistryConfig: every option of `cairn registry`, with its default.
//
// Sources, later ones winning: the defaults below, the YAML file given with
// --config (keys are the field names below; an unknown key is an error), and
// command-line flags. config/registry.yaml documents every key.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/grpc_tls.h"
#include "registry/session/server_options.h"
#include "registry/xds/xds_part.h"

namespace cairn {

struct RegistryConfig {
  // gRPC API address. Port 0 picks a free port (see ready_file).
  std::string listen = "127.0.0.1:9600";
  // Admin HTTP address (/health, /metrics, /api/v1/...).
  std::string admin = "127.0.0.1:9603";
  // Durable store directory. Default: $XDG_DATA_HOME/cairn/registry, else
  // $HOME/.local/share/cairn/registry.
  std::string data_dir = DefaultDataDir();
  // Number of data slots (dataInfoId hash mod slots). Fixed for a cluster's life.
  uint32_t slots = 256;
  // A client that sends nothing for this long is dead: its registrations go.
  uint32_t keepalive_timeout_ms = 30000;
  // Bounds for the timeout a client may ask for in its Hello.
  uint32_t min_keepalive_timeout_ms = 500;
  uint32_t max_keepalive_timeout_ms = 300000;
  // Publishers plus subscribers one client stream may hold.
  uint32_t max_registrations_per_client = 100000;
  // First wait for a push acknowledgement; doubles per retry up to the max.
  uint32_t push_ack_timeout_ms = 2000;
  uint32_t push_max_backoff_ms = 30000;
  // Unacknowledged pushes before a subscriber is paused until it acks.
  uint32_t push_max_attempts = 6;
  // Messages read from one stream and not yet handled before reading pauses.
  uint32_t stream_read_window = 64;
  // Messages queued to one stream before pushes to it are deferred.
  uint32_t stream_max_outbound = 4096;
  // Per gRPC connection (hostile or broken clients): the TLS and HTTP/2
  // handshakes must finish within handshake_timeout_ms; a connection with no
  // call open for max_connection_idle_ms is closed; at most
  // max_streams_per_connection calls at once on one connection.
  uint32_t handshake_timeout_ms = 10000;
  uint32_t max_connection_idle_ms = 300000;
  uint32_t max_streams_per_connection = 100;
  // An app revision no instance has referenced for this long is deleted.
  uint32_t revision_gc_after_ms = 600000;
  // Standalone: after a restart, pushes are withheld until every client of
  // the previous run has reconnected and replayed its registrations, or this
  // long, whichever is first (docs/ARCHITECTURE.md, "Restart and
  // reconnect"). 0 disables the warm-up.
  uint32_t restart_warmup_ms = 10000;
  // If set, written once listening: "grpc=HOST:PORT\nadmin=HOST:PORT\n".
  std::string ready_file;
  // trace, debug, info, warn, error.
  std::string log_level = "info";

  // Cluster mode. "standalone" (the default: every role in this process, no
  // etcd), or a comma-separated subset of meta, data, session.
  std::string roles = "standalone";
  // etcd endpoints HOST:PORT[,HOST:PORT...]; required by cluster roles.
  std::string etcd;
  // Name of the cluster: its keys live under /cairn/<cluster>/ in etcd.
  std::string cluster = "cairn";
  // This server's id in the cluster. Default: the listen address.
  std::string node_id;
  // Copies of each slot, leader included.
  uint32_t replicas = 2;
  // TTL of this server's etcd lease: how long a dead server stays a member.
  uint32_t lease_ttl_s = 5;
  // Slot changes per rebalancing step.
  uint32_t max_slot_moves = 8;
  // Data role: its DataNode gRPC address. Empty: `listen`, unless the same
  // process also runs the session role (then it must be set).
  std::string data_listen;
  // Data role: how long a session that neither watches nor is a member
  // (died) keeps its publishers before they are removed; also the longest a
  // new slot leader waits for a live session's part of the slot.
  uint32_t session_lease_ms = 30000;
  // Data role: a new slot leader still waiting for a live session's part of
  // the slot after this long says so in its log (it keeps waiting).
  uint32_t rebuild_timeout_ms = 3000;
  // Data role: how long a SIGTERM waits for this server's slots to move.
  uint32_t drain_timeout_ms = 20000;
  // Session role: how often it compares digests with every slot leader.
  uint32_t anti_entropy_interval_ms = 10000;
  // Session role: a cached datum nobody read for about this long is dropped.
  uint32_t datum_cache_idle_ms = 600000;

  // xDS (docs/xds.md): the registry serves the Aggregated Discovery Service
  // (state of the world and delta) on `listen`, in standalone mode and on every cluster
  // session server, so Envoy and proxyless gRPC clients (xds:///SERVICE) find
  // services without a sidecar.
  bool xds_enabled = true;
  // ADS streams one server holds at once; more are refused (RESOURCE_EXHAUSTED).
  uint32_t xds_max_streams = 10000;
  // Resource names one stream may subscribe to, per type.
  uint32_t xds_max_resources_per_stream = 1000;
  // Comma-separated xDS names whose Cluster balances by RING_HASH (on header
  // x-cairn-hash-key); the others use ROUND_ROBIN.
  std::string xds_ring_hash_services;
  // Which data URL of a publisher is its xDS endpoint: the first whose scheme
  // comes first here ("bare" stands for a plain HOST:PORT).
  std::string xds_endpoint_schemes = "grpc,h2c,http,https,tcp,bare";

  // TLS of every gRPC port this process serves (standalone API; cluster
  // session, data and meta servers) and of its channels to cluster peers.
  // YAML `tls: {cert, key, ca, client_cert: required|optional,
  // refresh_interval_s}`. Off while no file is named. With a CA, clients must
  // present a certificate chaining to it unless client_cert is "optional".
  TlsFiles tls;
  // Cluster mode with tls.ca: the identity (SPIFFE id, or cn=NAME) a caller
  // of a data server's DataNode port must prove (sessions and other data
  // servers). Empty: the identity of this server's own tls.cert.
  std::string cluster_peer_id;
  // TLS to etcd (URLs become https): YAML `etcd_tls: {cert, key, ca}`.
  TlsFiles etcd_tls;
  // Authorization policy file (docs/security.md, "Authorization"; example:
  // config/policy.example.yaml). Needs client certificates (tls.ca). Empty:
  // with client certificates, the built-in default policy; without, every
  // request is allowed.
  std::string policy_file;
  // If set, the admin HTTP query routes (/api/v1/...) need
  // `Authorization: Bearer <token>`, the token being this file's content.
  std::string admin_token_file;

  static std::string DefaultDataDir();
};

// Reads a YAML file over `base`. Errors name the file and the key.
absl::StatusOr<RegistryConfig> LoadRegistryConfig(const std::string& path, RegistryConfig base);

// The server side of config.tls: client certificates are asked for only when
// a CA is named (required by default, or optional).
TlsFiles ServerTlsFiles(const RegistryConfig& config);

// The xDS server's options; INVALID_ARGUMENT for an unknown endpoint scheme.
absl::StatusOr<xds::XdsPartOptions> XdsPartOptionsFrom(const RegistryConfig& config);

// The connection limits of the registry's gRPC port.
RegistryConnectionLimits ConnectionLimits(const RegistryConfig& config);

// "plaintext", "TLS", "mTLS (client certificates required)" or "TLS (client
// certificates optional)", for logs.
std::string TlsModeText(const TlsFiles& server_files);

// "required" -> true, "optional" -> false (TlsFiles::require_client_cert).
absl::StatusOr<bool> ParseClientCertMode(const std::string& mode);

// Checks ranges and addresses, and that the TLS files exist and match.
absl::Status ValidateRegistryConfig(const RegistryConfig& config);

}  // namespace cairn
