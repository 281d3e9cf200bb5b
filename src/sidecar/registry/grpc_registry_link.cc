// The module behind RegistryLink: Cairn's gRPC RegistryClient, built as
// libcairn_sidecar_registry.so and dlopened by LoadRegistryLink() only when a
// sidecar's config names the registry (see registry_link.h for why).
#include <string>
#include <utility>

#include "client/registry_client.h"
#include "sidecar/registry/registry_link.h"

namespace cairn::sidecar {
namespace {

class GrpcPublication : public RegistryPublication {
 public:
  explicit GrpcPublication(std::shared_ptr<Publisher> publisher)
      : publisher_(std::move(publisher)) {}
  absl::Status Unregister() override { return publisher_->Unregister(); }

 private:
  std::shared_ptr<Publisher> publisher_;
};

class GrpcSubscription : public RegistrySubscription {
 public:
  explicit GrpcSubscription(std::shared_ptr<Subscription> subscription)
      : subscription_(std::move(subscription)) {}

 private:
  std::shared_ptr<Subscription> subscription_;
};

class GrpcRegistryLink : public RegistryLink {
 public:
  explicit GrpcRegistryLink(std::unique_ptr<RegistryClient> client) : client_(std::move(client)) {}

  absl::StatusOr<std::shared_ptr<RegistrySubscription>> Subscribe(
      const RegistryDataKey& key, std::function<void(RegistryEndpoints)> on_push) override {
    SubscribeSpec spec;
    spec.key.set_data_id(key.data_id);
    spec.key.set_group(key.group);
    spec.key.set_instance_id(key.instance_id);
    auto subscription =
        client_->Subscribe(spec, [on_push = std::move(on_push)](const pb::Push& push) {
          RegistryEndpoints endpoints;
          endpoints.version = push.version();
          for (const auto& zone : push.zones()) {
            for (const auto& publisher : zone.publishers()) {
              endpoints.data.insert(endpoints.data.end(), publisher.data().begin(),
                                    publisher.data().end());
            }
          }
          on_push(std::move(endpoints));
        });
    if (!subscription.ok()) return subscription.status();
    return std::make_shared<GrpcSubscription>(std::move(*subscription));
  }

  absl::StatusOr<std::shared_ptr<RegistryPublication>> Publish(
      const RegistryPublishSpec& spec) override {
    PublishSpec publish;
    publish.key.set_data_id(spec.key.data_id);
    publish.key.set_group(spec.key.group);
    publish.key.set_instance_id(spec.key.instance_id);
    publish.app_name = spec.app_name;
    publish.zone = spec.zone;
    publish.data = spec.data;
    auto publisher = client_->Publish(publish);
    if (!publisher.ok()) return publisher.status();
    return std::make_shared<GrpcPublication>(std::move(*publisher));
  }

  void Close() override { client_->Close(); }

 private:
  std::unique_ptr<RegistryClient> client_;
};

}  // namespace
}  // namespace cairn::sidecar

extern "C" __attribute__((visibility("default"))) cairn::sidecar::RegistryLink*
cairn_create_registry_link(const cairn::sidecar::RegistryLinkOptions& options, std::string* error) {
  cairn::RegistryClientOptions client_options;
  client_options.servers = options.servers;
  client_options.client_id = options.client_id;
  client_options.keepalive_interval = std::chrono::milliseconds(options.keepalive_interval_ms);
  auto client = cairn::RegistryClient::Create(client_options);
  if (!client.ok()) {
    *error = client.status().ToString();
    return nullptr;
  }
  return new cairn::sidecar::GrpcRegistryLink(std::move(*client));
}
