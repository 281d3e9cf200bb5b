// cairn_test_grpc_echo_backend: a gRPC server of cairn.test.v1.EchoService
// (proto/cairn/test/v1/echo.proto) that registers itself in a registry
// through the C++ RegistryClient, for the tests of proxyless gRPC clients
// resolving it through the registry's xDS server.
//
//   cairn_test_grpc_echo_backend --name NAME [--port P] [--ready-file F]
//       [--registry HOST:PORT] [--data-id ID] [--zone Z] [--weight W]
//
// Listens on 127.0.0.1:P (0: the OS picks). With --registry it publishes
// "grpc://127.0.0.1:PORT" under dataId ID (default cairn.test.Echo) and
// waits for the registry's OK before writing the ready file ("port=P",
// renamed into place). Echo answers with the request's message and
// `backend` = NAME, after the request's delay_ms (bounded to 10 s).
// Signals:
//   SIGUSR1   unregister (the server keeps answering); prints "unregistered"
//   SIGUSR2   publish again; prints "published"
//   SIGTERM / SIGINT   unregister, stop the server (calls in flight get 2 s)
//                      and exit 0
// Stdout gets one line per event; nothing per call.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "cairn/test/v1/echo.grpc.pb.h"
#include "client/registry_client.h"

namespace {

namespace echo = ::cairn::test::v1;

class EchoServiceImpl final : public echo::EchoService::Service {
 public:
  explicit EchoServiceImpl(std::string name) : name_(std::move(name)) {}

  grpc::Status Echo(grpc::ServerContext* context, const echo::EchoRequest* request,
                    echo::EchoReply* reply) override {
    auto delay = std::chrono::milliseconds(std::min<uint32_t>(request->delay_ms(), 10000));
    auto deadline = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < deadline) {
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    reply->set_message(request->message());
    reply->set_backend(name_);
    return grpc::Status::OK;
  }

 private:
  std::string name_;
};

struct Flags {
  std::string name = "backend";
  int port = 0;
  std::string ready_file;
  std::string registry;
  std::string data_id = "cairn.test.Echo";
  std::string zone;
  std::string weight;
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--name") flags.name = value;
    if (flag == "--port") flags.port = std::atoi(value.c_str());
    if (flag == "--ready-file") flags.ready_file = value;
    if (flag == "--registry") flags.registry = value;
    if (flag == "--data-id") flags.data_id = value;
    if (flag == "--zone") flags.zone = value;
    if (flag == "--weight") flags.weight = value;
  }
  return flags;
}

// Publishes this backend; nullptr (and a message on stderr) on failure.
std::shared_ptr<cairn::Publisher> Publish(cairn::RegistryClient& client, const Flags& flags,
                                          int port) {
  cairn::PublishSpec spec;
  spec.key.set_data_id(flags.data_id);
  spec.data = {"grpc://127.0.0.1:" + std::to_string(port)};
  spec.zone = flags.zone;
  if (!flags.weight.empty()) spec.attributes["weight"] = flags.weight;
  auto publisher = client.Publish(spec);
  if (!publisher.ok()) {
    std::fprintf(stderr, "publish failed: %s\n", publisher.status().ToString().c_str());
    return nullptr;
  }
  std::printf("published %s grpc://127.0.0.1:%d\n", flags.data_id.c_str(), port);
  return *publisher;
}

void Unregister(std::shared_ptr<cairn::Publisher>& publisher) {
  if (!publisher) return;
  auto status = publisher->Unregister();
  if (!status.ok()) std::fprintf(stderr, "unregister failed: %s\n", status.ToString().c_str());
  publisher.reset();
  std::printf("unregistered\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const Flags flags = ParseFlags(argc, argv);
  // Blocked before any thread starts, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  EchoServiceImpl service(flags.name);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(flags.port),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", flags.port);
    return 1;
  }

  std::unique_ptr<cairn::RegistryClient> client;
  std::shared_ptr<cairn::Publisher> publisher;
  if (!flags.registry.empty()) {
    cairn::RegistryClientOptions options;
    options.servers = {flags.registry};
    options.client_id = flags.name;
    options.app_name = "cairn-test-grpc-echo";
    options.zone = flags.zone;
    options.keepalive_interval = std::chrono::milliseconds(500);
    options.reconnect_backoff_initial = std::chrono::milliseconds(50);
    options.reconnect_backoff_max = std::chrono::milliseconds(500);
    auto created = cairn::RegistryClient::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "registry client: %s\n", created.status().ToString().c_str());
      return 1;
    }
    client = std::move(*created);
    publisher = Publish(*client, flags, port);
    if (!publisher) return 1;
  }
  if (!flags.ready_file.empty()) {
    std::ofstream(flags.ready_file + ".tmp") << "port=" << port << "\n";
    std::rename((flags.ready_file + ".tmp").c_str(), flags.ready_file.c_str());
  }
  std::printf("serving %s on 127.0.0.1:%d\n", flags.name.c_str(), port);

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      Unregister(publisher);
    } else if (sig == SIGUSR2) {
      if (client && !publisher) publisher = Publish(*client, flags, port);
    } else {
      break;
    }
  }
  Unregister(publisher);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  if (client) client->Close();
  std::printf("stopped\n");
  return 0;
}
