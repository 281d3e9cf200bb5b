// cairn: the server binary. Subcommands:
//   cairn registry [--config FILE] [flags]   standalone registry (every role in one process)
//   cairn registry --role meta|data|session[,...] --etcd H:P   cluster mode
//   cairn sidecar --config FILE              the mesh sidecar: execs cairn-sidecar
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "cmd/grpc_log.h"
#include "cmd/stop_signals.h"
#include "coord/etcd_client.h"
#include "registry/auth/policy_reloader.h"
#include "registry/cluster/data_role.h"
#include "registry/cluster/meta_role.h"
#include "registry/cluster/session_role.h"
#include "registry/server/registry_config.h"
#include "registry/server/standalone_registry.h"

namespace {

// Flags given on the command line override the config file: each is applied
// only if it was set.
struct RegistryFlags {
  std::string config_file;
  cairn::RegistryConfig values;
  std::string tls_client_cert;  // required|optional
};

void AddRegistryFlags(CLI::App& cmd, RegistryFlags& f) {
  auto& v = f.values;
  cmd.add_option("--config", f.config_file, "YAML config file (see config/registry.yaml)");
  cmd.add_option("--listen", v.listen, "gRPC address HOST:PORT (default 127.0.0.1:9600)");
  cmd.add_option("--admin", v.admin, "admin HTTP address HOST:PORT (default 127.0.0.1:9603)");
  cmd.add_option("--data-dir", v.data_dir, "durable store directory");
  cmd.add_option("--slots", v.slots, "number of data slots (default 256)");
  cmd.add_option("--keepalive-timeout-ms", v.keepalive_timeout_ms,
                 "client silence before its registrations are removed (default 30000)");
  cmd.add_option("--min-keepalive-timeout-ms", v.min_keepalive_timeout_ms,
                 "smallest keepalive timeout a client may ask for (default 500)");
  cmd.add_option("--max-registrations-per-client", v.max_registrations_per_client,
                 "publishers + subscribers per stream (default 100000)");
  cmd.add_option("--handshake-timeout-ms", v.handshake_timeout_ms,
                 "a connection must finish its TLS and HTTP/2 handshakes within this (default "
                 "10000; 0: gRPC's 120 s)");
  cmd.add_option("--max-connection-idle-ms", v.max_connection_idle_ms,
                 "close a connection with no call open for this long (default 300000; 0: never)");
  cmd.add_option("--max-streams-per-connection", v.max_streams_per_connection,
                 "concurrent calls per connection (default 100; 0: gRPC's default)");
  cmd.add_option("--push-ack-timeout-ms", v.push_ack_timeout_ms,
                 "first wait for a push ack before resending (default 2000)");
  cmd.add_option("--push-max-attempts", v.push_max_attempts,
                 "unacked pushes before a subscriber is paused (default 6)");
  cmd.add_option("--revision-gc-after-ms", v.revision_gc_after_ms,
                 "delete app revisions unreferenced for this long (default 600000)");
  cmd.add_option("--restart-warmup-ms", v.restart_warmup_ms,
                 "standalone: after a restart, withhold pushes until the previous clients are "
                 "back, at most this long; 0 disables (default 10000)");
  cmd.add_option("--xds-enabled", v.xds_enabled,
                 "serve xDS (ADS) on the gRPC port for Envoy and proxyless gRPC (default true)");
  cmd.add_option("--xds-max-streams", v.xds_max_streams,
                 "ADS streams this server holds at once (default 10000)");
  cmd.add_option("--xds-max-resources-per-stream", v.xds_max_resources_per_stream,
                 "resource names one ADS stream may subscribe to, per type (default 1000)");
  cmd.add_option("--xds-ring-hash-services", v.xds_ring_hash_services,
                 "comma-separated xDS services balanced by RING_HASH (default none)");
  cmd.add_option("--xds-endpoint-schemes", v.xds_endpoint_schemes,
                 "data URL schemes usable as xDS endpoints, by preference (default "
                 "grpc,h2c,http,https,tcp,bare)");
  cmd.add_option("--ready-file", v.ready_file, "write grpc=/admin= addresses here when serving");
  cmd.add_option("--log-level", v.log_level, "trace|debug|info|warn|error (default info)");
  cmd.add_option("--role", v.roles,
                 "standalone (default), or cluster roles: meta,data,session (any subset)");
  cmd.add_option("--etcd", v.etcd,
                 "cluster mode: etcd endpoints [https://]HOST:PORT[,...] (TLS: --etcd-cacert)");
  cmd.add_option("--cluster", v.cluster, "cluster mode: cluster name (default cairn)");
  cmd.add_option("--node-id", v.node_id, "cluster mode: this server's id (default: --listen)");
  cmd.add_option("--cluster-peer-id", v.cluster_peer_id,
                 "cluster mode with --tls-ca: the identity callers of a data server must prove "
                 "(default: that of --tls-cert)");
  cmd.add_option("--replicas", v.replicas, "cluster mode: copies per slot (default 2)");
  cmd.add_option("--lease-ttl-s", v.lease_ttl_s, "cluster mode: etcd lease TTL (default 5)");
  cmd.add_option("--max-slot-moves", v.max_slot_moves,
                 "cluster mode: slot changes per rebalancing step (default 8)");
  cmd.add_option("--data-listen", v.data_listen,
                 "cluster data role: its own gRPC address (default: --listen)");
  cmd.add_option("--session-lease-ms", v.session_lease_ms,
                 "cluster data role: a dead session's publishers kept this long (default 30000)");
  cmd.add_option("--rebuild-timeout-ms", v.rebuild_timeout_ms,
                 "cluster data role: log slots still rebuilding after this (default 3000)");
  cmd.add_option("--drain-timeout-ms", v.drain_timeout_ms,
                 "cluster data role: SIGTERM waits this long for slots to move (default 20000)");
  cmd.add_option("--anti-entropy-interval-ms", v.anti_entropy_interval_ms,
                 "cluster session role: digest comparison period (default 10000)");
  cmd.add_option("--datum-cache-idle-ms", v.datum_cache_idle_ms,
                 "cluster session role: drop a cached datum unread this long (default 600000)");
  cmd.add_option("--tls-cert", v.tls.cert_file,
                 "TLS: this server's PEM certificate (gRPC ports and cluster peer channels)");
  cmd.add_option("--tls-key", v.tls.key_file, "TLS: the PEM private key of --tls-cert");
  cmd.add_option("--tls-ca", v.tls.ca_file,
                 "TLS: PEM CA bundle that client and peer certificates must chain to");
  cmd.add_option("--tls-client-cert", f.tls_client_cert,
                 "TLS with --tls-ca: required (default) or optional client certificates")
      ->check(CLI::IsMember({"required", "optional"}));
  cmd.add_option("--etcd-cacert", v.etcd_tls.ca_file, "cluster mode: CA of etcd's certificate");
  cmd.add_option("--etcd-cert", v.etcd_tls.cert_file, "cluster mode: client certificate for etcd");
  cmd.add_option("--etcd-key", v.etcd_tls.key_file, "cluster mode: key of --etcd-cert");
  cmd.add_option("--policy", v.policy_file,
                 "authorization policy YAML (docs/security.md; needs --tls-ca); reloaded on "
                 "SIGHUP and on change");
  cmd.add_option("--admin-token-file", v.admin_token_file,
                 "admin HTTP: the /api/v1 queries need Authorization: Bearer <file's token>");
}

absl::StatusOr<cairn::RegistryConfig> ResolveConfig(const CLI::App& cmd, const RegistryFlags& f) {
  cairn::RegistryConfig config;
  if (!f.config_file.empty()) {
    auto loaded = cairn::LoadRegistryConfig(f.config_file, config);
    if (!loaded.ok()) return loaded.status();
    config = *loaded;
  }
  const auto& v = f.values;
  auto set = [&cmd](const char* flag) { return cmd.count(flag) > 0; };
  if (set("--listen")) config.listen = v.listen;
  if (set("--admin")) config.admin = v.admin;
  if (set("--data-dir")) config.data_dir = v.data_dir;
  if (set("--slots")) config.slots = v.slots;
  if (set("--keepalive-timeout-ms")) config.keepalive_timeout_ms = v.keepalive_timeout_ms;
  if (set("--min-keepalive-timeout-ms")) {
    config.min_keepalive_timeout_ms = v.min_keepalive_timeout_ms;
  }
  if (set("--max-registrations-per-client")) {
    config.max_registrations_per_client = v.max_registrations_per_client;
  }
  if (set("--handshake-timeout-ms")) config.handshake_timeout_ms = v.handshake_timeout_ms;
  if (set("--max-connection-idle-ms")) config.max_connection_idle_ms = v.max_connection_idle_ms;
  if (set("--max-streams-per-connection")) {
    config.max_streams_per_connection = v.max_streams_per_connection;
  }
  if (set("--push-ack-timeout-ms")) config.push_ack_timeout_ms = v.push_ack_timeout_ms;
  if (set("--push-max-attempts")) config.push_max_attempts = v.push_max_attempts;
  if (set("--revision-gc-after-ms")) config.revision_gc_after_ms = v.revision_gc_after_ms;
  if (set("--restart-warmup-ms")) config.restart_warmup_ms = v.restart_warmup_ms;
  if (set("--xds-enabled")) config.xds_enabled = v.xds_enabled;
  if (set("--xds-max-streams")) config.xds_max_streams = v.xds_max_streams;
  if (set("--xds-max-resources-per-stream")) {
    config.xds_max_resources_per_stream = v.xds_max_resources_per_stream;
  }
  if (set("--xds-ring-hash-services")) config.xds_ring_hash_services = v.xds_ring_hash_services;
  if (set("--xds-endpoint-schemes")) config.xds_endpoint_schemes = v.xds_endpoint_schemes;
  if (set("--ready-file")) config.ready_file = v.ready_file;
  if (set("--log-level")) config.log_level = v.log_level;
  if (set("--role")) config.roles = v.roles;
  if (set("--etcd")) config.etcd = v.etcd;
  if (set("--cluster")) config.cluster = v.cluster;
  if (set("--node-id")) config.node_id = v.node_id;
  if (set("--cluster-peer-id")) config.cluster_peer_id = v.cluster_peer_id;
  if (set("--replicas")) config.replicas = v.replicas;
  if (set("--lease-ttl-s")) config.lease_ttl_s = v.lease_ttl_s;
  if (set("--max-slot-moves")) config.max_slot_moves = v.max_slot_moves;
  if (set("--data-listen")) config.data_listen = v.data_listen;
  if (set("--session-lease-ms")) config.session_lease_ms = v.session_lease_ms;
  if (set("--rebuild-timeout-ms")) config.rebuild_timeout_ms = v.rebuild_timeout_ms;
  if (set("--drain-timeout-ms")) config.drain_timeout_ms = v.drain_timeout_ms;
  if (set("--anti-entropy-interval-ms")) {
    config.anti_entropy_interval_ms = v.anti_entropy_interval_ms;
  }
  if (set("--datum-cache-idle-ms")) config.datum_cache_idle_ms = v.datum_cache_idle_ms;
  if (set("--tls-cert")) config.tls.cert_file = v.tls.cert_file;
  if (set("--tls-key")) config.tls.key_file = v.tls.key_file;
  if (set("--tls-ca")) config.tls.ca_file = v.tls.ca_file;
  if (set("--tls-client-cert")) config.tls.require_client_cert = f.tls_client_cert == "required";
  if (set("--etcd-cacert")) config.etcd_tls.ca_file = v.etcd_tls.ca_file;
  if (set("--etcd-cert")) config.etcd_tls.cert_file = v.etcd_tls.cert_file;
  if (set("--etcd-key")) config.etcd_tls.key_file = v.etcd_tls.key_file;
  if (set("--policy")) config.policy_file = v.policy_file;
  if (set("--admin-token-file")) config.admin_token_file = v.admin_token_file;
  return config;
}

// `cairn sidecar ARGS` runs the separate cairn-sidecar program in this
// process (same pid, so supervisors and tests see one process): that program
// maps no gRPC, which keeps an idle sidecar's memory small.
int ExecSidecar(int argc, char** argv) {
  std::error_code ec;
  auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  std::string path =
      ec ? std::string("cairn-sidecar") : (exe.parent_path() / "cairn-sidecar").string();
  std::vector<char*> args;
  args.push_back(const_cast<char*>(path.c_str()));
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(path.c_str(), args.data());
  std::fprintf(stderr, "cairn sidecar: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
  return 127;
}

// Blocks the stop signals and SIGHUP in every thread. Call before starting
// any thread.
sigset_t BlockServerSignals() {
  sigset_t signals = cairn::BlockStopSignals();
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits for SIGINT or SIGTERM and returns it; a SIGHUP meanwhile reloads the
// authorization policy file (registry/auth) and waits on.
int WaitForStopSignal(const sigset_t& signals) {
  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) return signal_number;
    spdlog::info("received SIGHUP: reloading the authorization policy");
    cairn::auth::RequestPolicyReload();
  }
}

int RunRegistry(const cairn::RegistryConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  cairn::RouteGrpcLogsToSpdlog();
  // The registry's state lives on one loop thread; gRPC's threads only
  // allocate short-lived buffers. glibc's default of up to 8 arenas per core
  // keeps memory those threads freed in arenas of their own: two arenas cut
  // the app-level fleet's registry RSS by ~1.5 MB (12.5 -> 11 MB) with no
  // change in throughput (docs/benchmarks.md). The environment still wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
  sigset_t stop_signals = BlockServerSignals();

  auto registry = cairn::StandaloneRegistry::Start(config);
  if (!registry.ok()) {
    spdlog::error("cannot start the registry: {}", registry.status().ToString());
    return 1;
  }
  int signal_number = 0;
  signal_number = WaitForStopSignal(stop_signals);
  spdlog::info("received {}", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*registry)->Shutdown();
  return 0;
}

// Cluster mode: the roles named by config.roles, coordinated through etcd.
// SIGTERM stops them gracefully: a data server first hands its slots over,
// a meta leader resigns so a standby takes over at once.
int RunCluster(cairn::RegistryConfig config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  cairn::RouteGrpcLogsToSpdlog();
  if (auto status = cairn::ValidateRegistryConfig(config); !status.ok()) {
    spdlog::error("cannot start the registry: {}", status.ToString());
    return 2;
  }
  std::vector<std::string> roles = absl::StrSplit(config.roles, ',', absl::SkipEmpty());
  auto has = [&roles](std::string_view r) {
    return std::find(roles.begin(), roles.end(), r) != roles.end();
  };
  if (config.node_id.empty()) config.node_id = config.listen;
  sigset_t stop_signals = BlockServerSignals();
  if (config.tls.enabled()) {
    // Peers dial each other with the same files: they must verify each other.
    if (auto s = cairn::ValidateTlsFiles(config.tls, /*server=*/false); !s.ok()) {
      spdlog::error("cannot start the registry: tls (cluster peers need a CA): {}",
                    std::string(s.message()));
      return 2;
    }
  }
  cairn::coord::EtcdOptions etcd;
  etcd.endpoints = absl::StrSplit(config.etcd, ',', absl::SkipEmpty());
  if (config.etcd_tls.enabled()) {
    auto credentials = cairn::MakeChannelCredentials(config.etcd_tls);
    if (!credentials.ok()) {
      spdlog::error("cannot start the registry: etcd_tls: {}",
                    std::string(credentials.status().message()));
      return 2;
    }
    etcd.credentials = std::move(*credentials);
  }
  auto client = cairn::coord::EtcdClient::Create(etcd);
  if (!client.ok()) {
    spdlog::error("cannot start the registry: {}", client.status().ToString());
    return 2;
  }
  std::unique_ptr<cairn::cluster::MetaRole> meta;
  std::unique_ptr<cairn::cluster::DataRole> data;
  std::unique_ptr<cairn::cluster::SessionRole> session;
  std::string ready = "id=" + config.node_id + "\netcd=" + config.etcd + "\n";
  if (has("meta")) {
    cairn::cluster::MetaRoleOptions options;
    options.cluster = config.cluster;
    options.id = config.node_id;
    options.address = config.listen;
    options.plan.slot_count = config.slots;
    options.plan.replicas = config.replicas;
    options.plan.max_moves = config.max_slot_moves;
    options.lease_ttl = std::chrono::seconds(config.lease_ttl_s);
    auto started = cairn::cluster::MetaRole::Start(**client, options);
    if (!started.ok()) {
      spdlog::error("cannot start the meta role: {}", started.status().ToString());
      return 1;
    }
    meta = std::move(*started);
    spdlog::info("meta {} in cluster {} (etcd {})", config.node_id, config.cluster, config.etcd);
  }
  if (has("data")) {
    cairn::cluster::DataRoleOptions options;
    options.cluster = config.cluster;
    options.id = config.node_id;
    options.listen = config.data_listen.empty() ? config.listen : config.data_listen;
    options.slot_count = config.slots;
    options.lease_ttl = std::chrono::seconds(config.lease_ttl_s);
    options.session_lease = std::chrono::milliseconds(config.session_lease_ms);
    options.rebuild_timeout = std::chrono::milliseconds(config.rebuild_timeout_ms);
    options.drain_timeout = std::chrono::milliseconds(config.drain_timeout_ms);
    options.revision_gc_after = std::chrono::milliseconds(config.revision_gc_after_ms);
    options.tls = cairn::ServerTlsFiles(config);
    options.peer_id = config.cluster_peer_id;
    auto started = cairn::cluster::DataRole::Start(**client, options);
    if (!started.ok()) {
      spdlog::error("cannot start the data role: {}", started.status().ToString());
      return 1;
    }
    data = std::move(*started);
    ready += "data=" + data->address() + "\n";
  }
  if (has("session")) {
    auto started = cairn::cluster::SessionRole::Start(**client, config);
    if (!started.ok()) {
      spdlog::error("cannot start the session role: {}", started.status().ToString());
      return 1;
    }
    session = std::move(*started);
    ready += "grpc=" + session->grpc_address() + "\nadmin=" + session->admin_address() + "\n";
  }
  if (!config.ready_file.empty()) {
    std::string tmp = config.ready_file + ".tmp";
    std::ofstream(tmp) << ready;
    std::filesystem::rename(tmp, config.ready_file);
  }
  int signal_number = 0;
  signal_number = WaitForStopSignal(stop_signals);
  spdlog::info("received {}", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  if (session) session->Shutdown();
  if (data) {
    data->Drain();  // its slots move to the followers first
    data->Stop();
  }
  if (meta) meta->Stop();  // resigns: a standby takes over at once
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "sidecar") return ExecSidecar(argc, argv);
  CLI::App app{"cairn: service registry and service-mesh sidecar"};
  app.require_subcommand(1);
  RegistryFlags registry_flags;
  CLI::App* registry = app.add_subcommand("registry", "run the standalone registry");
  AddRegistryFlags(*registry, registry_flags);
  // Parsed by cairn-sidecar (see ExecSidecar); listed here for --help.
  app.add_subcommand("sidecar", "run the mesh sidecar (cairn sidecar --help for its flags)")
      ->allow_extras();
  CLI11_PARSE(app, argc, argv);

  if (registry->parsed()) {
    auto config = ResolveConfig(*registry, registry_flags);
    if (!config.ok()) {
      std::fprintf(stderr, "cairn registry: %s\n", std::string(config.status().message()).c_str());
      return 2;
    }
    if (config->roles != "standalone") return RunCluster(*config);
    return RunRegistry(*config);
  }
  return 2;
}
