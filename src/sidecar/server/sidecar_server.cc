#include "sidecar/server/sidecar_server.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/event_loop.h"
#include "common/host_port.h"
#include "core/http/admin_http_server.h"
#include "sidecar/cluster/cluster_manager.h"
#include "sidecar/codec/rpc_codecs.h"
#include "sidecar/discovery/app_cluster_feed.h"
#include "sidecar/discovery/app_registrar.h"
#include "sidecar/discovery/local_registry_api.h"
#include "sidecar/http/connection_manager.h"
#include "sidecar/network/connection_balancer.h"
#include "sidecar/network/connection_handler.h"
#include "sidecar/network/connection_limit.h"
#include "sidecar/network/listener.h"
#include "sidecar/proxy/tcp_proxy.h"
#include "sidecar/registry/registry_link.h"
#include "sidecar/rpc/rpc_connection_manager.h"
#include "sidecar/server/admin_auth.h"
#include "sidecar/server/sidecar_tls.h"

namespace cairn::sidecar {
namespace {

class FileAccessLog : public AccessLog {
 public:
  explicit FileAccessLog(const std::string& path)
      : logger_(spdlog::basic_logger_mt("access-" + path, path)) {
    logger_->set_pattern("%Y-%m-%dT%H:%M:%S.%e %v");
    logger_->flush_on(spdlog::level::info);
  }
  ~FileAccessLog() override { spdlog::drop(logger_->name()); }
  void Log(const std::string& line) override { logger_->info(line); }

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

// One worker's listening sockets and accepted connections.
struct WorkerState {
  std::unordered_map<void*, std::shared_ptr<void>> sessions;  // worker-lifetime closures
  // The worker's share of the RPC path (its clusters, its metric cells).
  // Destroyed after the connections and before the worker's clusters.
  std::unique_ptr<RpcWorkerContext> rpc_context;
  // Every accepted connection of the worker, whatever its protocol.
  std::unique_ptr<ConnectionHandler> connections;
  std::vector<std::unique_ptr<Listener>> listeners;
};

}  // namespace

struct SidecarServer::Impl {
  SidecarConfig config;
  // By listener: its max_connections (declared before the workers: slots in
  // their queues are released into it), and the connections refused over it
  // (by worker: the accepting worker counts).
  std::vector<std::unique_ptr<ConnectionLimit>> connection_limits;
  std::vector<std::vector<LocalCounter*>> rejected_connections;
  std::shared_ptr<prometheus::Registry> metrics = std::make_shared<prometheus::Registry>();
  // What workers update on the request path: lock-free, per worker.
  std::unique_ptr<LocalMetrics> local_metrics = std::make_unique<LocalMetrics>();
  EventLoop control{"cairn-control"};
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<WorkerState>> worker_states;
  std::unique_ptr<ConnectionBalancer> balancer;  // spreads accepted connections
  std::unique_ptr<ClusterManager> clusters;
  std::vector<std::unique_ptr<HttpListenerContext>> http_contexts;  // by listener index
  // Per-service metrics of each RPC protocol some listener serves, by name.
  std::map<std::string, std::unique_ptr<RpcStats>> rpc_stats;
  // By listener: the context of each RPC protocol it serves, by name.
  std::vector<std::map<std::string, std::unique_ptr<RpcListenerContext>>> rpc_contexts;
  std::unique_ptr<AccessLog> access_log;
  std::unique_ptr<http::AdminHttpServer> admin;
  std::unique_ptr<RegistryLink> registry;  // null when no cluster or listener uses it
  std::vector<std::shared_ptr<RegistrySubscription>> subscriptions;
  // Inbound publishing (every discovery mode) and the local registration
  // API; null when no listener publishes.
  std::unique_ptr<discovery::AppRegistrar> registrar;
  // Outbound clusters fed app-level (app.discovery: app); null otherwise.
  std::unique_ptr<discovery::AppClusterFeeds> app_feeds;
  std::vector<std::string> listener_addresses;
  // admin_token_file's token; empty: the admin API asks for none.
  std::string admin_token;
  std::unique_ptr<EventLoop::Timer> publish_timer;
  SidecarTls tls;  // listener and cluster TLS contexts (none: all plaintext)
  std::unique_ptr<EventLoop::Timer> tls_timer;
  std::atomic<bool> draining{false};
  bool stopped = false;
  // Threads that make blocking registry calls; joined at shutdown after the
  // registry client is closed (which fails their waiting calls at once).
  std::mutex threads_mu;
  std::vector<std::thread> threads;
  template <typename Fn>
  void Spawn(Fn fn) {
    std::lock_guard lock(threads_mu);
    threads.emplace_back(std::move(fn));
  }

  absl::Status StartListeners();
  // The session of a connection accepted by worker `w` on listener `l`
  // (ConnectionHandler::SessionFactory): the listener's protocol, or on an
  // auto listener that sniffs, the RPC codec its first byte names (HTTP
  // otherwise). Null refuses the connection.
  std::unique_ptr<DownstreamSession> MakeSession(size_t w, size_t l,
                                                 std::unique_ptr<Connection> connection,
                                                 int first_byte,
                                                 ConnectionHandler::FinishCallback on_finished);
  void StartRegistry();
  void UpdatePublications();
  void ReloadTls();
  void InstallAdmin();
  size_t OpenSessions();
};

std::unique_ptr<DownstreamSession> SidecarServer::Impl::MakeSession(
    size_t w, size_t l, std::unique_ptr<Connection> connection, int first_byte,
    ConnectionHandler::FinishCallback on_finished) {
  Worker& worker = *workers[w];
  const ListenerConfig& listener = config.listeners[l];
  std::string protocol = listener.protocol;
  if (first_byte >= 0) {
    // A protocol the listener has no routes for falls to HTTP, which
    // answers 400 as it does to any other stranger.
    const RpcCodec* codec = DetectRpcCodec(static_cast<uint8_t>(first_byte));
    protocol = codec != nullptr && rpc_contexts[l].count(std::string(codec->name())) != 0
                   ? std::string(codec->name())
                   : std::string("auto");
  } else if (tls.listeners[l] != nullptr &&
             !connection->StartTls(tls.listeners[l]->Current()).ok()) {
    return nullptr;
  }
  if (protocol == "tcp") {
    ClusterWorker* cluster =
        clusters->worker_clusters(static_cast<int>(w)).Find(listener.tcp_cluster);
    if (cluster == nullptr) return nullptr;
    return std::make_unique<TcpProxy>(worker, std::move(connection), *cluster,
                                      std::move(on_finished));
  }
  if (auto it = rpc_contexts[l].find(protocol); it != rpc_contexts[l].end()) {
    return std::make_unique<RpcConnectionManager>(
        std::move(connection), *it->second, *worker_states[w]->rpc_context, std::move(on_finished));
  }
  return std::make_unique<HttpConnectionManager>(worker, std::move(connection), *http_contexts[l],
                                                 clusters->worker_clusters(static_cast<int>(w)),
                                                 std::move(on_finished));
}

absl::Status SidecarServer::Impl::StartListeners() {
  listener_addresses.resize(config.listeners.size());
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    const ListenerConfig& listener = config.listeners[l];
    auto hp = SplitHostPort(listener.address);
    if (!hp.ok()) return hp.status();
    uint16_t port = hp->second;
    // Port 0: the first worker's socket picks the port; the others join it.
    for (size_t w = 0; w < workers.size(); ++w) {
      auto opened = Listener::Open(*workers[w], hp->first, port, [this, w, l](int fd) {
        // Over max_connections: closed at accept; open connections go on.
        ConnectionLimit::Slot slot = connection_limits[l]->TryAcquire();
        if (slot == nullptr) {
          ::close(fd);
          rejected_connections[l][w]->Increment();
          return;
        }
        Worker& target = balancer->Pick(*workers[w]);
        if (&target == workers[w].get()) {
          worker_states[w]->connections->Accept(l, fd, std::move(slot));
          return;
        }
        size_t t = static_cast<size_t>(target.index());
        target.Post([this, t, l, fd, slot = std::move(slot)] {
          worker_states[t]->connections->Accept(l, fd, slot);
          balancer->Arrived(*workers[t]);
        });
      });
      if (!opened.ok()) {
        return absl::UnavailableError(
            absl::StrCat("listener ", listener.name, ": ", opened.status().message()));
      }
      port = (*opened)->port();
      worker_states[w]->listeners.push_back(std::move(*opened));
    }
    listener_addresses[l] = absl::StrCat(hp->first, ":", port);
  }
  for (size_t w = 0; w < workers.size(); ++w) {
    WorkerState* state = worker_states[w].get();
    workers[w]->Post([state] {
      for (auto& listener : state->listeners) listener->StartAccepting();
    });
  }
  return absl::OkStatus();
}

void SidecarServer::Impl::StartRegistry() {
  bool needed = false;
  for (const auto& c : config.clusters) needed |= c.registry.has_value();
  for (const auto& l : config.listeners) needed |= l.publish.has_value();
  if (!needed) return;
  RegistryLinkOptions options;
  options.servers = config.registry_servers;
  options.client_id = "cairn-sidecar-" + std::to_string(::getpid());
  options.keepalive_interval_ms = 3000;
  if (config.registry_tls) {
    options.tls_cert_file = config.registry_tls->cert;
    options.tls_key_file = config.registry_tls->key;
    options.tls_ca_file = config.registry_tls->ca;
  }
  auto link = LoadRegistryLink(options);
  if (!link.ok()) {
    spdlog::error("registry: {}", link.status().ToString());
    return;
  }
  registry = std::move(*link);
  const auto mode = discovery::ParseDiscoveryMode(config.app.discovery);
  // Outbound, app mode: registry clusters are fed from app-level data (see
  // app_cluster_feed.h). Modes interface and both subscribe per interface.
  if (mode == discovery::DiscoveryMode::kApp) {
    app_feeds = std::make_unique<discovery::AppClusterFeeds>(
        *registry, std::chrono::milliseconds(config.app.mapping_refresh_ms),
        [this](const std::string& name, std::vector<std::string> urls) {
          control.Post(
              [this, name, urls = std::move(urls)] { clusters->SetEndpoints(name, urls); });
        });
    for (const auto& cluster : config.clusters) {
      if (!cluster.registry) continue;
      app_feeds->AddCluster(cluster.name, {cluster.registry->data_id, cluster.registry->group,
                                           cluster.registry->instance_id});
    }
    app_feeds->Start();
  }
  // Subscriptions are made in the background: the registry may be down at
  // start; the client keeps retrying and replays them when it connects.
  for (const auto& cluster : config.clusters) {
    if (!cluster.registry || app_feeds != nullptr) continue;
    RegistryDataKey key{cluster.registry->data_id, cluster.registry->group,
                        cluster.registry->instance_id};
    std::string name = cluster.name;
    Spawn([this, key, name] {
      for (int attempt = 0; attempt < 600 && !draining.load(); ++attempt) {
        auto sub = registry->Subscribe(key, [this, name](RegistryEndpoints endpoints) {
          spdlog::info("cluster {}: registry pushed {} endpoints (version {})", name,
                       endpoints.data.size(), endpoints.version);
          control.Post([this, name, urls = std::move(endpoints.data)] {
            clusters->SetEndpoints(name, urls);
          });
        });
        if (sub.ok()) {
          control.Post([this, sub = *sub] { subscriptions.push_back(sub); });
          return;
        }
        if (absl::IsCancelled(sub.status())) return;  // client closed: shutting down
        spdlog::warn("cluster {}: cannot subscribe yet: {}", name, sub.status().ToString());
      }
    });
  }
  bool publishes = false;
  for (const auto& l : config.listeners) publishes |= l.publish.has_value();
  if (!publishes) return;
  discovery::RegistrarOptions registrar_options;
  registrar_options.mode = mode;
  registrar_options.app_name = config.app.name;
  registrar_options.zone = config.app.zone;
  std::vector<discovery::RegistrarListener> registrar_listeners;
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    const ListenerConfig& listener = config.listeners[l];
    if (listener.publish && registrar_options.app_name.empty()) {
      registrar_options.app_name = listener.publish->app;
    }
    if (listener.publish && registrar_options.zone.empty()) {
      registrar_options.zone = listener.publish->zone;
    }
    std::vector<std::string> rpc_protocols;
    for (const auto& [rpc, routes] : listener.rpc_routes) rpc_protocols.push_back(rpc);
    registrar_listeners.push_back({listener.name, listener_addresses[l], listener.protocol,
                                   std::move(rpc_protocols), listener.publish});
  }
  registrar = std::make_unique<discovery::AppRegistrar>(*registry, registrar_options,
                                                        std::move(registrar_listeners));
  control.Post([this] { UpdatePublications(); });
}

// Tells the registrar which inbound listeners have a healthy local app (or
// always healthy, without a health cluster): it publishes those, per the
// discovery mode, and withdraws the others. Runs every second on the control
// loop.
void SidecarServer::Impl::UpdatePublications() {
  if (draining.load() || registrar == nullptr) return;
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    const ListenerConfig& listener = config.listeners[l];
    if (!listener.publish) continue;
    bool healthy = true;
    if (!listener.publish_health_cluster.empty()) {
      auto& cluster = *clusters->worker_clusters(0).Find(listener.publish_health_cluster);
      auto hosts = cluster.hosts();
      healthy = hosts != nullptr && hosts->CountAvailable() > 0;
    }
    registrar->SetHealthy(l, healthy);
  }
  publish_timer =
      control.RunAfter(std::chrono::milliseconds(1000), [this] { UpdatePublications(); });
}

// Certificates replaced on disk are used for new handshakes within a second.
void SidecarServer::Impl::ReloadTls() {
  if (draining.load()) return;
  tls.ReloadChanged();
  tls_timer = control.RunAfter(std::chrono::milliseconds(1000), [this] { ReloadTls(); });
}

void SidecarServer::Impl::InstallAdmin() {
  admin->Handle("GET", "/health", [this](const http::Request&) {
    http::Response response;
    response.content_type = "application/json";
    if (draining.load()) {
      response.status = 503;
      response.body = "{\"status\":\"DRAINING\"}\n";
    } else {
      response.body = "{\"status\":\"LIVE\"}\n";
    }
    return response;
  });
  admin->Handle("GET", "/metrics", [this](const http::Request&) {
    http::Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    auto families = metrics->Collect();
    for (auto& family : local_metrics->Collect()) families.push_back(std::move(family));
    response.body = prometheus::TextSerializer().Serialize(families);
    return response;
  });
  admin->Handle("GET", "/config", [this](const http::Request&) {
    http::Response response;
    response.content_type = "application/yaml";
    response.body = DumpSidecarConfig(config);
    return response;
  });
  // The local registration API (local_registry_api.h) and the app-level
  // discovery state. `registrar` and `app_feeds` are set before the admin
  // server starts (StartRegistry) and reset only after it stopped.
  if (config.app.local_api) {
    for (bool publish : {true, false}) {
      admin->Handle(
          "POST", publish ? "/registry/publish" : "/registry/unpublish",
          [this, publish](const http::Request& request) {
            if (!admin_token.empty() &&
                !BearerTokenMatches(http::FindHeader(request, "authorization"), admin_token)) {
              http::Response response;
              response.status = 401;
              response.content_type = "application/json";
              response.headers.emplace_back("www-authenticate", "Bearer");
              response.body =
                  "{\"error\":\"this endpoint needs Authorization: Bearer <token> "
                  "(admin_token_file)\"}\n";
              return response;
            }
            if (registrar == nullptr || draining.load()) {
              http::Response response;
              response.status = registrar == nullptr ? 409 : 503;
              response.content_type = "application/json";
              response.body = registrar == nullptr
                                  ? "{\"error\":\"no listener publishes (listeners[].publish)\"}\n"
                                  : "{\"error\":\"draining\"}\n";
              return response;
            }
            return discovery::HandleLocalRegistration(*registrar, request, publish);
          });
    }
  }
  admin->Handle("GET", "/registry", [this](const http::Request&) {
    http::Response response;
    response.content_type = "application/json";
    response.body = absl::StrCat(
        "{\"discovery\":\"", config.app.discovery,
        "\",\"inbound\":", registrar ? registrar->StateJson() : std::string("null"),
        ",\"outbound\":", app_feeds ? app_feeds->StateJson() : std::string("null"), "}\n");
    return response;
  });
  admin->Handle("GET", "/clusters", [this](const http::Request&) {
    std::promise<std::string> answer;
    auto future = answer.get_future();
    control.Post([this, &answer] { answer.set_value(clusters->DescribeJson()); });
    http::Response response;
    response.content_type = "application/json";
    if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      response.status = 503;
      response.body = "{\"error\":\"control loop busy\"}\n";
      // The promise must outlive the posted task: wait for it after all.
      future.wait();
      return response;
    }
    response.body = future.get();
    return response;
  });
}

size_t SidecarServer::Impl::OpenSessions() {
  size_t open = 0;
  for (size_t w = 0; w < workers.size(); ++w) {
    WorkerState* state = worker_states[w].get();
    std::promise<size_t> count;
    workers[w]->Post([state, &count] { count.set_value(state->connections->open()); });
    open += count.get_future().get();
  }
  return open;
}

SidecarServer::SidecarServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SidecarServer::~SidecarServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<SidecarServer>> SidecarServer::Start(SidecarConfig config,
                                                                    const std::string& ready_file) {
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.config = std::move(config);
  uint32_t worker_count =
      s.config.workers != 0 ? s.config.workers : std::max(1u, std::thread::hardware_concurrency());
  for (uint32_t i = 0; i < worker_count; ++i) {
    s.workers.push_back(std::make_unique<Worker>(static_cast<int>(i)));
    s.worker_states.push_back(std::make_unique<WorkerState>());
    s.worker_states.back()->connections = std::make_unique<ConnectionHandler>(*s.workers.back());
  }
  {
    std::vector<Worker*> all;
    for (auto& worker : s.workers) all.push_back(worker.get());
    s.balancer = std::make_unique<ConnectionBalancer>(std::move(all));
  }
  if (!s.config.access_log.empty())
    s.access_log = std::make_unique<FileAccessLog>(s.config.access_log);
  for (const auto& listener : s.config.listeners) {
    auto context = std::make_unique<HttpListenerContext>(
        HttpListenerContext{.name = listener.name,
                            .protocol = listener.protocol,
                            .routes = RouteTable(listener.routes),
                            .limits = CodecLimits{},
                            .access_log = s.access_log.get(),
                            .downstream_requests = {},
                            .downstream_connections = {}});
    for (uint32_t w = 0; w < worker_count; ++w) {
      context->downstream_requests.push_back(&s.local_metrics->Counter(
          "cairn_sidecar_downstream_requests_total", "Requests received, by listener",
          {{"listener", listener.name}}));
      context->downstream_connections.push_back(&s.local_metrics->Gauge(
          "cairn_sidecar_downstream_connections", "Open downstream connections, by listener",
          {{"listener", listener.name}}));
    }
    context->limits.max_header_bytes = s.config.max_request_header_bytes;
    context->limits.max_body_bytes = s.config.max_request_body_bytes;
    context->http2_flush_delay = std::chrono::microseconds(listener.http2_flush_delay_us);
    context->http2_flush_batch = listener.http2_flush_batch;
    context->limits.http2_max_reset_burst = listener.http2_max_reset_burst;
    context->limits.http2_resets_per_s = listener.http2_resets_per_s;
    context->limits.http2_max_continuations = listener.http2_max_continuations;
    context->request_header_timeout = std::chrono::milliseconds(listener.request_header_timeout_ms);
    context->idle_timeout = std::chrono::milliseconds(listener.idle_timeout_ms);
    s.connection_limits.push_back(std::make_unique<ConnectionLimit>(listener.max_connections));
    s.rejected_connections.emplace_back();
    for (uint32_t w = 0; w < worker_count; ++w) {
      const MetricLabels labels = {{"listener", listener.name}};
      context->header_timeouts.push_back(&s.local_metrics->Counter(
          "cairn_sidecar_downstream_timeouts_total",
          "Downstream connections closed by a listener timeout, by listener and kind",
          {{"listener", listener.name}, {"kind", "header"}}));
      context->idle_timeouts.push_back(&s.local_metrics->Counter(
          "cairn_sidecar_downstream_timeouts_total",
          "Downstream connections closed by a listener timeout, by listener and kind",
          {{"listener", listener.name}, {"kind", "idle"}}));
      s.rejected_connections.back().push_back(&s.local_metrics->Counter(
          "cairn_sidecar_downstream_connections_rejected_total",
          "Connections closed at accept because the listener had max_connections open", labels));
    }
    s.http_contexts.push_back(std::move(context));
  }
  // RPC: every protocol a listener has routes for (its own, or on auto).
  s.rpc_contexts.resize(s.config.listeners.size());
  for (size_t l = 0; l < s.config.listeners.size(); ++l) {
    const ListenerConfig& listener = s.config.listeners[l];
    for (const auto& [name, routes] : listener.rpc_routes) {
      const RpcCodec* codec = FindRpcCodec(name);
      if (codec == nullptr) {
        return absl::InternalError(absl::StrCat("no codec for protocol ", name));
      }
      std::unique_ptr<RpcStats>& stats = s.rpc_stats[name];
      if (stats == nullptr) stats = std::make_unique<RpcStats>(*s.local_metrics, *codec);
      const HttpListenerContext& http = *s.http_contexts[l];
      s.rpc_contexts[l][name] = std::make_unique<RpcListenerContext>(RpcListenerContext{
          listener.name, codec, RpcRouteTable(routes), RpcLimits{}, stats.get(), s.access_log.get(),
          http.downstream_requests, http.downstream_connections,
          // The listener's timeouts and counters ({kind="header"} counts frames).
          http.request_header_timeout, http.idle_timeout, http.header_timeouts,
          http.idle_timeouts});
    }
  }
  // How each worker takes a listener's connections: one factory per
  // listener; auto listeners with RPC routes wait for the first byte.
  for (size_t w = 0; w < s.workers.size(); ++w) {
    ConnectionHandler& handler = *s.worker_states[w]->connections;
    for (size_t l = 0; l < s.config.listeners.size(); ++l) {
      const ListenerConfig& listener = s.config.listeners[l];
      Impl* self = &s;
      handler.AddListener(ConnectionHandler::ListenerSetup{
          .make_session =
              [self, w, l](std::unique_ptr<Connection> connection, int first_byte,
                           ConnectionHandler::FinishCallback on_finished) {
                return self->MakeSession(w, l, std::move(connection), first_byte,
                                         std::move(on_finished));
              },
          .sniff = listener.protocol == "auto" && !listener.rpc_routes.empty(),
          // The sniffer has no clock of its own: a client that sends
          // nothing is closed after the request header timeout.
          .first_byte_timeout = std::chrono::milliseconds(listener.request_header_timeout_ms)});
    }
  }
  if (auto tls = SidecarTls::Load(s.config); tls.ok()) {
    s.tls = std::move(*tls);
  } else {
    return tls.status();
  }
  s.control.Start();
  for (auto& worker : s.workers) worker->Start();
  std::vector<Worker*> worker_ptrs;
  for (auto& worker : s.workers) worker_ptrs.push_back(worker.get());
  s.clusters =
      std::make_unique<ClusterManager>(s.config, worker_ptrs, s.control.io(), *s.local_metrics);
  std::promise<absl::Status> init;
  s.control.Post([&s, &init] { init.set_value(s.clusters->Init()); });
  if (auto status = init.get_future().get(); !status.ok()) {
    std::unique_ptr<SidecarServer> failed(new SidecarServer(std::move(impl)));
    failed->Shutdown();
    return status;
  }
  // Each worker's RPC context: references only, made here before any
  // listener starts accepting.
  for (size_t w = 0; w < s.workers.size(); ++w) {
    s.worker_states[w]->rpc_context = std::make_unique<RpcWorkerContext>(
        *s.workers[w], s.clusters->worker_clusters(static_cast<int>(w)));
  }
  // Upstream TLS, on each worker before any listener accepts.
  for (size_t w = 0; w < s.workers.size() && !s.tls.clusters.empty(); ++w) {
    WorkerClusters* clusters = &s.clusters->worker_clusters(static_cast<int>(w));
    s.workers[w]->Post([clusters, sources = s.tls.clusters] {
      for (const auto& [name, source] : sources) {
        if (ClusterWorker* cluster = clusters->Find(name)) cluster->SetTls(source);
      }
    });
  }
  if (!s.tls.empty()) s.control.Post([&s] { s.ReloadTls(); });
  // Idle upstream connections are closed once a second.
  for (size_t w = 0; w < s.workers.size(); ++w) {
    auto* clusters = &s.clusters->worker_clusters(static_cast<int>(w));
    auto* worker = s.workers[w].get();
    auto tick = std::make_shared<std::function<void()>>();
    *tick = [worker, clusters, weak = std::weak_ptr<std::function<void()>>(tick)] {
      for (auto& [name, cluster] : clusters->all()) cluster->CloseIdleConnections();
      worker->RunAfter(std::chrono::seconds(1), [weak] {
        if (auto fn = weak.lock()) (*fn)();
      });
    };
    worker->Post([tick] { (*tick)(); });
    // Keep the closure alive as long as the worker's state.
    s.worker_states[w]->sessions[tick.get()] = tick;
  }
  if (auto status = s.StartListeners(); !status.ok()) {
    std::unique_ptr<SidecarServer> failed(new SidecarServer(std::move(impl)));
    failed->Shutdown();
    return status;
  }
  auto admin_hp = SplitHostPort(s.config.admin);
  if (!admin_hp.ok()) return admin_hp.status();
  http::AdminHttpServer::Options admin_options;
  admin_options.host = admin_hp->first;
  admin_options.port = admin_hp->second;
  s.admin = std::make_unique<http::AdminHttpServer>(admin_options);
  if (!s.config.admin_token_file.empty()) {
    auto token = LoadAdminToken(s.config.admin_token_file);
    if (!token.ok()) {
      std::unique_ptr<SidecarServer> failed(new SidecarServer(std::move(impl)));
      failed->Shutdown();
      return token.status();
    }
    s.admin_token = std::move(*token);
  }
  s.InstallAdmin();
  s.StartRegistry();  // before the admin server: its handlers read registrar
  if (auto status = s.admin->Start(); !status.ok()) {
    std::unique_ptr<SidecarServer> failed(new SidecarServer(std::move(impl)));
    failed->Shutdown();
    return absl::UnavailableError(absl::StrCat("admin: ", status.message()));
  }
  std::string admin_address = absl::StrCat(admin_hp->first, ":", s.admin->port());
  for (size_t l = 0; l < s.config.listeners.size(); ++l) {
    spdlog::info("listener {} ({}) on {} with {} workers", s.config.listeners[l].name,
                 s.config.listeners[l].protocol, s.listener_addresses[l], s.workers.size());
  }
  spdlog::info("sidecar admin on {}", admin_address);
  if (!ready_file.empty()) {
    std::string tmp = ready_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "admin=" << admin_address << "\n";
      for (size_t l = 0; l < s.config.listeners.size(); ++l) {
        out << "listener." << s.config.listeners[l].name << "=" << s.listener_addresses[l] << "\n";
      }
    }
    std::filesystem::rename(tmp, ready_file);
  }
  return std::unique_ptr<SidecarServer>(new SidecarServer(std::move(impl)));
}

void SidecarServer::ReloadTls() {
  Impl* s = impl_.get();
  s->control.Post([s] { s->tls.ReloadAll(); });
}

void SidecarServer::Drain() {
  Impl& s = *impl_;
  if (s.stopped || s.draining.exchange(true)) return;
  spdlog::info("draining: withdrawing publications and closing listeners");
  std::promise<void> withdrawn;
  s.control.Post([&s, &withdrawn] {
    s.publish_timer.reset();
    withdrawn.set_value();
  });
  withdrawn.get_future().wait();
  if (s.registrar) s.registrar->Withdraw();
  for (size_t w = 0; w < s.workers.size(); ++w) {
    WorkerState* state = s.worker_states[w].get();
    s.workers[w]->RunAndWait([state] {
      for (auto& listener : state->listeners) listener->Close();
      state->connections->Drain();
    });
  }
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(s.config.drain_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline && s.OpenSessions() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Shutdown();
}

void SidecarServer::Shutdown() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.draining = true;
  if (s.admin) s.admin->Stop();
  if (s.registry) s.registry->Close();
  {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(s.threads_mu);
      threads.swap(s.threads);
    }
    for (auto& thread : threads) thread.join();
  }
  // Destroy each worker's objects on the worker, then stop it.
  for (size_t w = 0; w < s.workers.size(); ++w) {
    WorkerState* state = s.worker_states[w].get();
    ClusterManager* clusters = s.clusters.get();
    s.workers[w]->RunAndWait([state, clusters, w] {
      state->listeners.clear();
      state->connections->Clear();
      state->sessions.clear();
      state->rpc_context.reset();
      if (clusters != nullptr) clusters->worker_clusters(static_cast<int>(w)).all().clear();
    });
    s.workers[w]->Stop();
  }
  if (s.clusters) {
    std::promise<void> done;
    s.control.Post([&s, &done] {
      // The registry link is closed: their threads end at once. On the loop,
      // so that no UpdatePublications or SetEndpoints task races them.
      s.registrar.reset();
      s.app_feeds.reset();
      s.clusters->Shutdown();
      s.publish_timer.reset();
      s.tls_timer.reset();
      done.set_value();
    });
    done.get_future().wait();
  }
  s.control.Stop();
  s.subscriptions.clear();
  s.registrar.reset();
  s.app_feeds.reset();
  s.registry.reset();
}

}  // namespace cairn::sidecar
