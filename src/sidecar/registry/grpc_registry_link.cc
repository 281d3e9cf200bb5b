// The module behind RegistryLink: Cairn's gRPC RegistryClient, built as
// libcairn_sidecar_registry.so and dlopened by LoadRegistryLink() only when a
// sidecar's config names the registry (see registry_link.h for why).
#include <grpcpp/grpcpp.h>

#include <set>
#include <string>
#include <utility>

#include "cairn/registry/v1/registry.grpc.pb.h"
#include "client/registry_client.h"
#include "common/data_info.h"
#include "registry/app/app_model.h"
#include "sidecar/registry/registry_link.h"

namespace cairn::sidecar {
namespace {

class GrpcPublication : public RegistryPublication {
 public:
  explicit GrpcPublication(std::shared_ptr<Publisher> publisher)
      : publisher_(std::move(publisher)) {}
  absl::Status Unregister() override { return publisher_->Unregister(); }
  absl::Status Republish(std::vector<std::string> data) override {
    return publisher_->Republish(std::move(data));
  }

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

pb::DataInfoKey ToKey(const RegistryDataKey& key) {
  pb::DataInfoKey out;
  out.set_data_id(key.data_id);
  out.set_group(key.group);
  out.set_instance_id(key.instance_id);
  return out;
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

class GrpcRegistryLink : public RegistryLink {
 public:
  GrpcRegistryLink(std::unique_ptr<RegistryClient> client, std::vector<std::string> servers,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials)
      : client_(std::move(client)), servers_(std::move(servers)) {
    for (const auto& server : servers_) {
      stubs_.push_back(pb::Registry::NewStub(grpc::CreateChannel(server, credentials)));
    }
  }

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

  absl::StatusOr<std::string> RegisterRevision(const RegistryRevisionSpec& spec) override {
    RevisionSpec revision;
    revision.app_name = spec.app_name;
    for (const auto& interface : spec.interfaces) {
      revision.interfaces.push_back({ToKey(interface.key), interface.params});
    }
    return client_->RegisterRevision(revision);
  }

  absl::StatusOr<std::shared_ptr<RegistryPublication>> PublishApp(
      const RegistryAppInstanceSpec& spec) override {
    AppInstanceSpec instance;
    instance.app_name = spec.app_name;
    instance.revision = spec.revision;
    instance.endpoints = spec.endpoints;
    instance.zone = spec.zone;
    auto publisher = client_->PublishApp(instance);
    if (!publisher.ok()) return publisher.status();
    return std::make_shared<GrpcPublication>(std::move(*publisher));
  }

  absl::StatusOr<std::shared_ptr<RegistrySubscription>> SubscribeApp(
      const std::string& app_name, std::function<void(RegistryAppPush)> on_push) override {
    auto subscription =
        client_->SubscribeApp(app_name, [on_push = std::move(on_push)](const pb::Push& push) {
          RegistryAppPush out;
          out.version = push.version();
          for (const auto& zone : push.zones()) {
            for (const auto& publisher : zone.publishers()) {
              RegistryAppEntry entry;
              const auto& attributes = publisher.attributes();
              if (auto it = attributes.find(std::string(app::kRevisionAttribute));
                  it != attributes.end()) {
                entry.revision = it->second;
              }
              if (auto it = attributes.find(std::string(app::kInterfaceAttribute));
                  it != attributes.end()) {
                entry.interface_id = it->second;
              }
              entry.data.assign(publisher.data().begin(), publisher.data().end());
              out.entries.push_back(std::move(entry));
            }
          }
          on_push(std::move(out));
        });
    if (!subscription.ok()) return subscription.status();
    return std::make_shared<GrpcSubscription>(std::move(*subscription));
  }

  absl::StatusOr<RegistryRevision> GetRevision(const std::string& revision) override {
    auto meta = client_->GetRevision(revision);  // cached by the client
    if (!meta.ok()) return meta.status();
    RegistryRevision out;
    out.revision = meta->revision();
    out.app_name = meta->app_name();
    for (const auto& interface : meta->interfaces()) {
      out.interfaces.push_back({DataInfoId(NormalizeKey(interface.key())),
                                std::map<std::string, std::string>(interface.params().begin(),
                                                                   interface.params().end())});
    }
    return out;
  }

  absl::StatusOr<RegistryInterfaceApps> AppsServing(const RegistryDataKey& key) override {
    // The connected server first: its index is the one this link's pushes
    // come from.
    std::string connected = client_->ConnectedServer();
    std::vector<size_t> order;
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i] == connected)
        order.insert(order.begin(), i);
      else
        order.push_back(i);
    }
    absl::Status last = absl::UnavailableError("no registry server");
    for (size_t i : order) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      pb::DescribeInterfaceRequest request;
      *request.mutable_key() = ToKey(key);
      pb::DescribeInterfaceResponse response;
      grpc::Status status = stubs_[i]->DescribeInterface(&context, request, &response);
      if (!status.ok()) {
        last = FromGrpc(status);
        if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) return last;
        continue;
      }
      std::set<std::string> apps;
      for (const auto& app : response.apps()) {
        if (app.instances() > 0) apps.insert(app.app_name());
      }
      RegistryInterfaceApps out;
      out.interface_publishers = response.interface_publishers();
      if (out.interface_publishers > 0) {
        // A migration: whose are the interface-level publishers? (Entries
        // derived from app instances carry cairn.revision.)
        grpc::ClientContext describe_context;
        describe_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        pb::DescribeRequest describe;
        *describe.mutable_key() = ToKey(key);
        pb::DescribeResponse described;
        status = stubs_[i]->Describe(&describe_context, describe, &described);
        if (!status.ok()) {
          last = FromGrpc(status);
          continue;
        }
        for (const auto& info : described.publishers()) {
          const auto& publisher = info.publisher();
          if (publisher.attributes().count(std::string(app::kRevisionAttribute)) > 0) continue;
          if (publisher.app_name().empty()) {
            ++out.unattributed;
          } else {
            apps.insert(publisher.app_name());
          }
        }
      }
      out.apps.assign(apps.begin(), apps.end());
      return out;
    }
    return last;
  }

  std::string DataInfoIdOf(const RegistryDataKey& key) override {
    return DataInfoId(NormalizeKey(ToKey(key)));
  }

  void Close() override { client_->Close(); }

 private:
  std::unique_ptr<RegistryClient> client_;
  std::vector<std::string> servers_;
  std::vector<std::unique_ptr<pb::Registry::Stub>> stubs_;  // by server index
};

}  // namespace
}  // namespace cairn::sidecar

extern "C" __attribute__((visibility("default"))) cairn::sidecar::RegistryLink*
cairn_create_registry_link(const cairn::sidecar::RegistryLinkOptions& options, std::string* error) {
  cairn::RegistryClientOptions client_options;
  client_options.servers = options.servers;
  client_options.client_id = options.client_id;
  client_options.keepalive_interval = std::chrono::milliseconds(options.keepalive_interval_ms);
  client_options.tls.cert_file = options.tls_cert_file;
  client_options.tls.key_file = options.tls_key_file;
  client_options.tls.ca_file = options.tls_ca_file;
  auto credentials = cairn::MakeChannelCredentials(client_options.tls);
  if (!credentials.ok()) {
    *error = credentials.status().ToString();
    return nullptr;
  }
  auto client = cairn::RegistryClient::Create(client_options);
  if (!client.ok()) {
    *error = client.status().ToString();
    return nullptr;
  }
  return new cairn::sidecar::GrpcRegistryLink(std::move(*client), options.servers, *credentials);
}
