#include "registry/cluster/session_role.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <future>
#include <mutex>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/host_port.h"
#include "coord/etcd_kv_store.h"
#include "coord/membership.h"
#include "core/http/admin_http_server.h"
#include "registry/app/revision_store.h"
#include "registry/cluster/cluster_app_discovery.h"
#include "registry/cluster/cluster_keys.h"
#include "registry/cluster/cluster_view.h"
#include "registry/cluster/remote_data_service.h"
#include "registry/server/admin_routes.h"
#include "registry/server/session_authz.h"
#include "registry/server/standalone_registry.h"
#include "registry/session/grpc_service.h"
#include "registry/session/server_options.h"
#include "registry/session/session_server.h"

namespace cairn::cluster {

struct SessionRole::Impl {
  explicit Impl(const RegistryConfig& config) : config(config), keys(config.cluster) {}
  RegistryConfig config;
  ClusterKeys keys;
  std::string grpc_address;
  std::string admin_address;
  RegistryMetrics metrics;
  EventLoop loop{"cairn-session"};
  // Blocking etcd calls of app revisions (ClusterAppDiscovery), off `loop`.
  EventLoop etcd_io{"cairn-etcd-io"};
  std::unique_ptr<KvStore> kv;  // the cluster's KvStore in etcd
  std::unique_ptr<RevisionStore> revision_store;
  std::unique_ptr<coord::PrefixWatcher> revision_watcher;
  std::unique_ptr<RemoteDataService> data;
  std::unique_ptr<ClusterAppDiscovery> apps;  // wraps data; what the session server talks to
  // Outlives the session that checks with it.
  SessionAuthz authz;
  std::unique_ptr<SessionServer> session;
  std::unique_ptr<GrpcRegistryService> service;
  std::unique_ptr<xds::XdsPart> xds;  // null when xds_enabled is false
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<http::AdminHttpServer> admin;
  std::unique_ptr<ClusterView> view;
  std::unique_ptr<coord::MemberRegistration> membership;
  bool stopped = false;
  // Cleared on the loop before apps goes: revision snapshots posted later are dropped.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::mutex servers_mu;
  v1::ServerList servers;  // guarded by servers_mu; for GET /api/v1/servers

  void OnView(const ClusterSnapshot& snapshot) {
    {
      std::lock_guard lock(servers_mu);
      servers.Clear();
      for (const auto& [id, member] : snapshot.sessions) *servers.add_sessions() = member;
      for (const auto& [id, member] : snapshot.data) *servers.add_data() = member;
      servers.set_slot_table_epoch(snapshot.table ? snapshot.table->epoch() : 0);
    }
    data->OnView(snapshot);
  }

  http::Response ServerListJson() {
    std::string body;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    {
      std::lock_guard lock(servers_mu);
      (void)google::protobuf::util::MessageToJsonString(servers, &body, options);
    }
    http::Response response;
    response.content_type = "application/json";
    response.body = std::move(body);
    return response;
  }
};

SessionRole::SessionRole(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SessionRole::~SessionRole() { Shutdown(); }
const std::string& SessionRole::grpc_address() const { return impl_->grpc_address; }
const std::string& SessionRole::admin_address() const { return impl_->admin_address; }

absl::StatusOr<std::unique_ptr<SessionRole>> SessionRole::Start(coord::EtcdClient& client,
                                                                const RegistryConfig& config) {
  auto admin_hp = SplitHostPort(config.admin);
  if (!admin_hp.ok()) return admin_hp.status();
  auto grpc_hp = SplitHostPort(config.listen);
  if (!grpc_hp.ok()) return grpc_hp.status();
  auto impl = std::make_unique<Impl>(config);
  Impl& r = *impl;

  // One start time names this incarnation in membership and towards the
  // data servers (SessionIncarnation).
  v1::MemberInfo info;
  info.set_id(config.node_id);
  info.set_role("session");
  info.set_started_at_ms(WallMillis());
  const std::string incarnation = SessionIncarnation(info);
  RemoteDataOptions data_options;
  data_options.session_id = incarnation;
  data_options.slot_count = config.slots;
  data_options.anti_entropy_interval = std::chrono::milliseconds(config.anti_entropy_interval_ms);
  data_options.datum_cache_idle = std::chrono::milliseconds(config.datum_cache_idle_ms);
  data_options.cached_datums = &r.metrics.cached_datums;
  if (config.tls.enabled()) {
    auto peer_credentials = MakeChannelCredentials(config.tls);
    if (!peer_credentials.ok()) return peer_credentials.status();
    data_options.peer_credentials = std::move(*peer_credentials);
  }
  auto server_credentials = MakeServerCredentials(ServerTlsFiles(config));
  if (!server_credentials.ok()) return server_credentials.status();
  r.data = std::make_unique<RemoteDataService>(r.loop, data_options);
  auto kv = coord::OpenEtcdKvStore(client, r.keys.Kv());
  if (!kv.ok()) return kv.status();
  r.kv = std::move(*kv);
  r.revision_store = NewKvRevisionStore(*r.kv);
  ClusterAppOptions app_options;
  app_options.touch_interval = std::chrono::milliseconds(config.revision_gc_after_ms) / 4;
  r.apps = std::make_unique<ClusterAppDiscovery>(r.loop, r.etcd_io, *r.data, *r.revision_store,
                                                 app_options);
  SessionOptions session_options = SessionOptionsFrom(config);
  session_options.session_name = incarnation;
  r.session = std::make_unique<SessionServer>(r.loop, *r.apps, r.metrics, session_options);
  r.session->SetRevisionService(r.apps.get());
  auto authz = SessionAuthzFrom(config, r.metrics);
  if (!authz.ok()) return authz.status();
  r.authz = std::move(*authz);
  r.session->SetAuthorizer(r.authz.authorizer.get());
  // Listings cover the whole cluster, not only what this session fetched.
  r.session->SetDatumLister(
      [&r](const std::string& prefix, auto done) { r.data->ListCluster(prefix, std::move(done)); });
  auto xds_options = XdsPartOptionsFrom(config);
  if (!xds_options.ok()) return xds_options.status();
  r.xds = xds::XdsPart::Create(r.loop, *r.apps, r.metrics.registry(), r.authz.authorizer.get(),
                               *xds_options);
  if (r.xds) {
    // A wildcard subscription lists every service of the cluster.
    r.xds->server()->SetDatumLister([&r](auto done) { r.data->ListCluster("", std::move(done)); });
  }
  r.loop.Start();
  r.etcd_io.Start();
  // The revision catalog, before clients come: read once, then followed.
  // Incremental: a copy of the whole catalog per change cost O(revisions).
  r.revision_watcher = std::make_unique<coord::PrefixWatcher>(
      client, r.keys.Kv() + kRevisionKeyPrefix,
      coord::PrefixWatcher::ChangesCallback(
          [&r, alive = r.alive](coord::PrefixWatcher::Changes changes) {
            r.loop.Post([&r, alive, changes = std::move(changes)] {
              if (!*alive) return;
              if (changes.reset) {
                r.apps->OnStoredRevisions(changes.puts);
              } else {
                r.apps->OnStoredRevisionChanges(changes.puts, changes.deletes);
              }
            });
          }));
  r.loop.Post([&r] {
    r.session->Start();
    r.data->Start();
  });
  std::unique_ptr<SessionRole> role(new SessionRole(std::move(impl)));

  r.service = std::make_unique<GrpcRegistryService>(
      r.loop, *r.session, GrpcServiceOptions{config.stream_read_window, config.stream_max_outbound},
      r.apps.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(config.listen, *server_credentials, &selected_port);
  builder.RegisterService(r.service.get());
  if (r.xds) r.xds->Register(builder);
  ConfigureRegistryServer(builder, ConnectionLimits(config));
  r.grpc_server = builder.BuildAndStart();
  if (r.grpc_server == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  r.grpc_address = absl::StrCat(grpc_hp->first, ":", selected_port);

  http::AdminHttpServer::Options admin_options;
  admin_options.host = admin_hp->first;
  admin_options.port = admin_hp->second;
  r.admin = std::make_unique<http::AdminHttpServer>(admin_options);
  InstallAdminRoutes(*r.admin, r.loop, *r.session, r.metrics, r.apps.get(), r.authz.admin_token);
  // Where clients find every session of the cluster.
  r.admin->Handle("GET", "/api/v1/servers",
                  [&r](const http::Request&) { return r.ServerListJson(); });
  if (auto s = r.admin->Start(); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("admin: cannot listen on ", config.admin, ": ", s.message()));
  }
  r.admin_address = absl::StrCat(admin_hp->first, ":", r.admin->port());

  r.view = std::make_unique<ClusterView>(
      client, r.keys, r.loop, [&r](const ClusterSnapshot& snapshot) { r.OnView(snapshot); });
  if (auto s = r.view->Start(); !s.ok()) return s;
  if (auto s = r.revision_watcher->Start(); !s.ok()) return s;
  info.set_address(r.grpc_address);
  r.membership = std::make_unique<coord::MemberRegistration>(
      client, r.keys.Member("session", config.node_id), info.SerializeAsString(),
      std::chrono::seconds(config.lease_ttl_s));
  if (auto s = r.membership->Start(); !s.ok()) return s;
  spdlog::info("session {} serving gRPC on {} ({}) and admin HTTP on {} (cluster {})",
               config.node_id, r.grpc_address, TlsModeText(ServerTlsFiles(config)), r.admin_address,
               config.cluster);
  return role;
}

void SessionRole::Shutdown() {
  Impl& r = *impl_;
  if (r.stopped) return;
  r.stopped = true;
  if (r.membership) r.membership->Leave();
  if (r.view) r.view->Stop();
  if (r.admin) r.admin->Stop();
  if (r.grpc_server) {
    // Streams that end from now on do not unpublish one by one: the data
    // servers' session lease, or the clients' replay elsewhere, takes over.
    r.loop.Post([&r] { r.session->PrepareForShutdown(); });
    if (r.xds) r.xds->CloseStreams();
    r.grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    r.grpc_server->Wait();
  }
  if (r.xds) r.xds->DestroyOnLoop();  // before the data service it listens to
  r.revision_watcher.reset();         // no snapshot is posted after this
  r.data->Stop();
  r.etcd_io.Stop();  // registrations in flight are dropped with their streams
  std::promise<void> dropped;
  r.loop.Post([&r, &dropped] {
    *r.alive = false;
    r.session.reset();
    r.apps.reset();
    r.data.reset();
    dropped.set_value();
  });
  dropped.get_future().wait();
  r.loop.Stop();
}

}  // namespace cairn::cluster
