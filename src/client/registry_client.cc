#include "client/registry_client.h"

#include <utility>

#include "client/client_core.h"
#include "common/data_info.h"
#include "registry/app/app_model.h"

namespace cairn {

using client_internal::ClientCore;
using client_internal::Registration;

// ---------------------------------------------------------------- Publisher

Publisher::Publisher(std::shared_ptr<ClientCore> core, std::shared_ptr<Registration> reg)
    : core_(std::move(core)), reg_(std::move(reg)) {}

Publisher::~Publisher() { (void)core_->Unregister(reg_, /*wait=*/false); }

absl::Status Publisher::Republish(std::vector<std::string> data) {
  std::lock_guard<std::mutex> lock(op_mu_);
  return core_->Republish(reg_, std::move(data));
}

absl::Status Publisher::Unregister() {
  std::lock_guard<std::mutex> lock(op_mu_);
  return core_->Unregister(reg_, /*wait=*/true);
}

const std::string& Publisher::registration_id() const { return reg_->id; }
uint64_t Publisher::datum_version() const { return reg_->datum_version.load(); }
uint64_t Publisher::version() const { return reg_->version.load(); }

// ---------------------------------------------------------------- Subscription

Subscription::Subscription(std::shared_ptr<ClientCore> core, std::shared_ptr<Registration> reg)
    : core_(std::move(core)), reg_(std::move(reg)) {}

Subscription::~Subscription() { (void)core_->Unregister(reg_, /*wait=*/false); }

absl::Status Subscription::Unsubscribe() {
  std::lock_guard<std::mutex> lock(op_mu_);
  return core_->Unregister(reg_, /*wait=*/true);
}

const std::string& Subscription::registration_id() const { return reg_->id; }
uint64_t Subscription::delivered_version() const { return reg_->delivered_version.load(); }

// ---------------------------------------------------------------- RegistryClient

absl::StatusOr<std::unique_ptr<RegistryClient>> RegistryClient::Create(
    RegistryClientOptions options) {
  absl::StatusOr<std::shared_ptr<ClientCore>> core = ClientCore::Create(std::move(options));
  if (!core.ok()) return core.status();
  return std::unique_ptr<RegistryClient>(new RegistryClient(*std::move(core)));
}

RegistryClient::RegistryClient(std::shared_ptr<ClientCore> core) : core_(std::move(core)) {}

RegistryClient::~RegistryClient() { core_->Close(); }

absl::Status RegistryClient::WaitConnected(std::chrono::milliseconds timeout) {
  return core_->WaitConnected(timeout);
}

absl::StatusOr<std::shared_ptr<Publisher>> RegistryClient::Publish(const PublishSpec& spec) {
  auto reg =
      std::make_shared<Registration>(Registration::Kind::kPublisher, core_->NewRegistrationId());
  pb::Publish& publish = reg->publish;
  publish.set_registration_id(reg->id);
  *publish.mutable_key() = spec.key;
  for (const std::string& entry : spec.data) publish.add_data(entry);
  publish.set_app_name(spec.app_name);
  publish.set_zone(spec.zone);
  for (const auto& [key, value] : spec.attributes) (*publish.mutable_attributes())[key] = value;
  publish.set_version(1);
  reg->version.store(1);
  // Refuse locally what the server would refuse, without a round trip.
  if (absl::Status s = ValidatePublish(publish); !s.ok()) return s;
  if (absl::Status s = core_->Register(reg); !s.ok()) return s;
  return std::shared_ptr<Publisher>(new Publisher(core_, std::move(reg)));
}

absl::StatusOr<std::shared_ptr<Subscription>> RegistryClient::Subscribe(const SubscribeSpec& spec,
                                                                        PushCallback callback) {
  if (!callback) return absl::InvalidArgumentError("a push callback is required");
  auto reg =
      std::make_shared<Registration>(Registration::Kind::kSubscriber, core_->NewRegistrationId());
  pb::Subscribe& subscribe = reg->subscribe;
  subscribe.set_registration_id(reg->id);
  *subscribe.mutable_key() = spec.key;
  subscribe.set_scope(spec.scope);
  subscribe.set_zone(spec.zone);
  reg->callback = std::make_shared<const PushCallback>(std::move(callback));
  if (absl::Status s = ValidateSubscribe(subscribe); !s.ok()) return s;
  if (absl::Status s = core_->Register(reg); !s.ok()) return s;
  return std::shared_ptr<Subscription>(new Subscription(core_, std::move(reg)));
}

absl::StatusOr<std::string> RegistryClient::RegisterRevision(const RevisionSpec& spec) {
  pb::RevisionMeta meta;
  meta.set_app_name(spec.app_name.empty() ? core_->options().app_name : spec.app_name);
  for (const InterfaceSpec& iface : spec.interfaces) {
    pb::InterfaceMeta* out = meta.add_interfaces();
    *out->mutable_key() = iface.key;
    out->mutable_params()->insert(iface.params.begin(), iface.params.end());
  }
  meta.set_revision(spec.revision.empty() ? app::ContentRevisionId(meta) : spec.revision);
  if (absl::Status s = app::ValidateRevision(meta); !s.ok()) return s;
  meta = app::CanonicalRevision(meta);
  if (absl::Status s = core_->RegisterRevision(meta, /*resend=*/false); !s.ok()) return s;
  return meta.revision();
}

absl::StatusOr<std::shared_ptr<Publisher>> RegistryClient::PublishApp(const AppInstanceSpec& spec) {
  std::string app_name = spec.app_name.empty() ? core_->options().app_name : spec.app_name;
  if (absl::Status s = app::ValidateAppName(app_name); !s.ok()) return s;
  if (absl::Status s = app::ValidateRevisionId(spec.revision); !s.ok()) return s;
  if (spec.endpoints.empty()) {
    return absl::InvalidArgumentError("an app instance publishes at least one endpoint");
  }
  PublishSpec publish{app::AppKey(app_name), spec.endpoints, app_name, spec.zone, spec.attributes};
  publish.attributes[std::string(app::kRevisionAttribute)] = spec.revision;
  auto result = Publish(publish);
  if (!absl::IsFailedPrecondition(result.status())) return result;
  // The server lost the revision (e.g. collected it before this instance
  // appeared): re-send it if we have it, then try once more.
  auto meta = GetLocalRevision(spec.revision);
  if (!meta.has_value()) return result;
  if (absl::Status s = core_->RegisterRevision(*meta, /*resend=*/true); !s.ok()) return s;
  return Publish(publish);
}

absl::StatusOr<std::shared_ptr<Subscription>> RegistryClient::SubscribeApp(
    const std::string& app_name, PushCallback callback, pb::Scope scope) {
  if (absl::Status s = app::ValidateAppName(app_name); !s.ok()) return s;
  return Subscribe({app::AppKey(app_name), scope, ""}, std::move(callback));
}

absl::StatusOr<pb::RevisionMeta> RegistryClient::GetRevision(const std::string& revision) {
  if (absl::Status s = app::ValidateRevisionId(revision); !s.ok()) return s;
  return core_->GetRevision(revision);
}

std::optional<pb::RevisionMeta> RegistryClient::GetLocalRevision(const std::string& revision) {
  return core_->LocalRevision(revision);
}

void RegistryClient::Close() { core_->Close(); }

std::string RegistryClient::ConnectedServer() const { return core_->ConnectedServer(); }
bool RegistryClient::IsConnected() const { return core_->IsConnected(); }
RegistryClientStats RegistryClient::stats() const { return core_->stats(); }

}  // namespace cairn
