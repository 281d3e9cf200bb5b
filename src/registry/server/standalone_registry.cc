#include "registry/server/standalone_registry.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/host_port.h"
#include "core/http/admin_http_server.h"
#include "registry/app/app_discovery.h"
#include "registry/app/revision_store.h"
#include "registry/data/local_data_server.h"
#include "registry/meta/meta_service.h"
#include "registry/server/admin_routes.h"
#include "registry/server/connected_clients.h"
#include "registry/server/session_authz.h"
#include "registry/session/grpc_service.h"
#include "registry/session/server_options.h"
#include "registry/session/session_server.h"
#include "store/kv_store.h"

namespace cairn {

struct StandaloneRegistry::Impl {
  RegistryConfig config;
  std::string grpc_address;
  std::string admin_address;
  RegistryMetrics metrics;
  std::unique_ptr<KvStore> store;
  RestartWarmupMetrics warmup_metrics{metrics.registry()};
  // Which clients are connected, in the store, for the next run's warm-up.
  std::unique_ptr<ConnectedClientsRecorder> clients_recorder;
  uint64_t recorded_generation = 0;  // loop-owned
  EventLoop loop{"cairn-registry"};
  std::unique_ptr<EventLoop::Timer> clients_timer;  // loop-owned; declared after loop
  std::unique_ptr<LocalMetaService> meta;
  std::unique_ptr<LocalDataServer> data;
  std::unique_ptr<RevisionStore> revision_store;
  std::unique_ptr<AppDiscovery> apps;  // wraps data; what the session role talks to
  SessionAuthz authz;                  // outlives the session that checks with it
  std::unique_ptr<SessionServer> session;
  std::unique_ptr<GrpcRegistryService> service;
  std::unique_ptr<xds::XdsPart> xds;  // null when xds_enabled is false
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<http::AdminHttpServer> admin;
  bool stopped = false;
};

namespace {

// How often the connected clients are compared with what was recorded.
constexpr std::chrono::milliseconds kRecordClientsPeriod{1000};

// On the loop, every kRecordClientsPeriod: offers the connected clients to
// the recorder when they changed since the last offer.
void RecordClientsEvery(StandaloneRegistry::Impl& r);

absl::Status WriteReadyFile(const std::string& path, const std::string& grpc,
                            const std::string& admin) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "grpc=" << grpc << "\nadmin=" << admin << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

void RecordClientsEvery(StandaloneRegistry::Impl& r) {
  if (r.session->connected_clients_generation() != r.recorded_generation) {
    r.recorded_generation = r.session->connected_clients_generation();
    r.clients_recorder->Offer(r.session->ConnectedClients());
  }
  r.clients_timer = r.loop.RunAfter(kRecordClientsPeriod, [&r] { RecordClientsEvery(r); });
}

}  // namespace

SessionOptions SessionOptionsFrom(const RegistryConfig& config) {
  SessionOptions session_options;
  session_options.keepalive_timeout = std::chrono::milliseconds(config.keepalive_timeout_ms);
  session_options.min_keepalive_timeout =
      std::chrono::milliseconds(config.min_keepalive_timeout_ms);
  session_options.max_keepalive_timeout =
      std::chrono::milliseconds(config.max_keepalive_timeout_ms);
  session_options.max_registrations_per_client = config.max_registrations_per_client;
  session_options.push.ack_timeout = std::chrono::milliseconds(config.push_ack_timeout_ms);
  session_options.push.max_backoff = std::chrono::milliseconds(config.push_max_backoff_ms);
  session_options.push.max_attempts = static_cast<int>(config.push_max_attempts);
  return session_options;
}

StandaloneRegistry::StandaloneRegistry(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StandaloneRegistry::~StandaloneRegistry() { Shutdown(); }

const std::string& StandaloneRegistry::grpc_address() const { return impl_->grpc_address; }
const std::string& StandaloneRegistry::admin_address() const { return impl_->admin_address; }

absl::StatusOr<std::unique_ptr<StandaloneRegistry>> StandaloneRegistry::Start(
    const RegistryConfig& config) {
  if (auto s = ValidateRegistryConfig(config); !s.ok()) return s;
  auto admin_hp = SplitHostPort(config.admin);
  if (!admin_hp.ok()) return admin_hp.status();

  auto impl = std::make_unique<Impl>();
  Impl& r = *impl;
  r.config = config;
  auto store = OpenSqliteKvStore(config.data_dir);
  if (!store.ok()) return store.status();
  r.store = std::move(*store);
  auto clock = VersionClock::Open(r.store.get());
  if (!clock.ok()) return clock.status();
  RestartWarmup::ClientCounts previous_clients = ConnectedClientsRecorder::Load(*r.store);
  r.clients_recorder = std::make_unique<ConnectedClientsRecorder>(*r.store, kRecordClientsPeriod);

  r.meta = std::make_unique<LocalMetaService>("local", config.slots);
  r.data = std::make_unique<LocalDataServer>(config.slots, std::move(*clock));
  SessionOptions session_options = SessionOptionsFrom(config);
  r.revision_store = NewKvRevisionStore(*r.store);
  AppDiscoveryOptions app_options;
  app_options.revision_gc_after = std::chrono::milliseconds(config.revision_gc_after_ms);
  auto apps = AppDiscovery::Create(r.loop, *r.data, r.revision_store.get(), app_options);
  if (!apps.ok()) return apps.status();
  r.apps = std::move(*apps);
  r.session = std::make_unique<SessionServer>(r.loop, *r.apps, r.metrics, session_options);
  r.session->SetRevisionService(r.apps.get());
  auto authz = SessionAuthzFrom(config, r.metrics);
  if (!authz.ok()) return authz.status();
  r.authz = std::move(*authz);
  r.session->SetAuthorizer(r.authz.authorizer.get());
  auto xds_options = XdsPartOptionsFrom(config);
  if (!xds_options.ok()) return xds_options.status();
  r.xds = xds::XdsPart::Create(r.loop, *r.apps, r.metrics.registry(), r.authz.authorizer.get(),
                               *xds_options);
  r.loop.Start();
  r.loop.Post([&r, previous = std::move(previous_clients)]() mutable {
    // Before the gRPC server starts: no stream can come before the warm-up.
    r.session->BeginRestartWarmup(std::move(previous),
                                  std::chrono::milliseconds(r.config.restart_warmup_ms),
                                  r.warmup_metrics);
    r.session->Start();
    r.apps->Start();
    RecordClientsEvery(r);
  });

  r.service = std::make_unique<GrpcRegistryService>(
      r.loop, *r.session, GrpcServiceOptions{config.stream_read_window, config.stream_max_outbound},
      r.apps.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto credentials = MakeServerCredentials(ServerTlsFiles(config));
  if (!credentials.ok()) {
    r.loop.Stop();
    return absl::InvalidArgumentError(absl::StrCat("tls: ", credentials.status().message()));
  }
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(config.listen, *credentials, &selected_port);
  builder.RegisterService(r.service.get());
  if (r.xds) r.xds->Register(builder);
  ConfigureRegistryServer(builder, ConnectionLimits(config));
  r.grpc_server = builder.BuildAndStart();
  if (r.grpc_server == nullptr || selected_port == 0) {
    r.loop.Stop();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  auto grpc_hp = SplitHostPort(config.listen);
  std::string grpc_host = grpc_hp.ok() ? grpc_hp->first : "127.0.0.1";
  r.grpc_address = absl::StrCat(grpc_host, ":", selected_port);

  http::AdminHttpServer::Options admin_options;
  admin_options.host = admin_hp->first;
  admin_options.port = admin_hp->second;
  r.admin = std::make_unique<http::AdminHttpServer>(admin_options);
  InstallAdminRoutes(*r.admin, r.loop, *r.session, r.metrics, r.apps.get(), r.authz.admin_token);
  if (auto s = r.admin->Start(); !s.ok()) {
    r.grpc_server->Shutdown();
    r.loop.Stop();
    return absl::UnavailableError(
        absl::StrCat("admin: cannot listen on ", config.admin, ": ", s.message()));
  }
  r.admin_address = absl::StrCat(admin_hp->first, ":", r.admin->port());

  spdlog::info(
      "cairn registry (standalone) serving gRPC on {} ({}) and admin HTTP on {}; data in {}",
      r.grpc_address, TlsModeText(ServerTlsFiles(config)), r.admin_address, config.data_dir);
  std::unique_ptr<StandaloneRegistry> registry(new StandaloneRegistry(std::move(impl)));
  if (!config.ready_file.empty()) {
    auto s = WriteReadyFile(config.ready_file, registry->grpc_address(), registry->admin_address());
    if (!s.ok()) {
      registry->Shutdown();
      return s;
    }
  }
  return registry;
}

void StandaloneRegistry::Shutdown() {
  Impl& r = *impl_;
  if (r.stopped) return;
  r.stopped = true;
  spdlog::info("cairn registry shutting down");
  if (r.admin) r.admin->Stop();
  // Record the clients as they are now, before their streams end: they will
  // reconnect to the next run, which waits for them.
  std::promise<RestartWarmup::ClientCounts> connected;
  r.loop.Post([&r, &connected] {
    r.clients_timer.reset();
    connected.set_value(r.session->ConnectedClients());
  });
  r.clients_recorder->Stop(connected.get_future().get());
  // Queued before the streams' disconnects: they then skip unpublishing
  // registrations one by one, since the data role stops with us.
  r.loop.Post([&r] { r.session->PrepareForShutdown(); });
  if (r.xds) r.xds->CloseStreams();
  // Ends every stream; clients see UNAVAILABLE and reconnect. Waits for the
  // reactors' OnDone, which post their disconnects to the loop.
  r.grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  r.grpc_server->Wait();
  if (r.xds) r.xds->DestroyOnLoop();  // before the data service it listens to
  // Drop loop-owned state on the loop thread (timers belong to it), then stop.
  std::promise<void> dropped;
  r.loop.Post([&r, &dropped] {
    r.session.reset();
    r.apps.reset();
    dropped.set_value();
  });
  dropped.get_future().wait();
  r.loop.Stop();
}

}  // namespace cairn
