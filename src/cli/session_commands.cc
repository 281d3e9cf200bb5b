// publish and subscribe: commands that hold a Session stream open.
#include <atomic>
#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "client/registry_client.h"
#include "google/protobuf/struct.pb.h"

namespace cairn::cli {
namespace {

using std::chrono::milliseconds;

milliseconds Millis(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000.0)); }

absl::StatusOr<std::unique_ptr<RegistryClient>> Connect(const GlobalFlags& global,
                                                        const std::string& client_id,
                                                        milliseconds request_timeout) {
  RegistryClientOptions options;
  options.servers = global.servers;
  options.client_id = client_id;
  options.request_timeout = request_timeout;
  options.tls = global.tls;
  return RegistryClient::Create(std::move(options));
}

// Splits "key=value" attribute flags.
absl::Status ParseAttributes(const std::vector<std::string>& flags,
                             std::map<std::string, std::string>* out) {
  for (const std::string& flag : flags) {
    size_t eq = flag.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--attr wants KEY=VALUE, got \"", flag, "\""));
    }
    (*out)[flag.substr(0, eq)] = flag.substr(eq + 1);
  }
  return absl::OkStatus();
}

pb::Scope ParseScope(const std::string& scope) {
  if (scope == "zone") return pb::SCOPE_ZONE;
  if (scope == "global") return pb::SCOPE_GLOBAL;
  return pb::SCOPE_DATACENTER;
}

}  // namespace

int RunPublish(const GlobalFlags& global, const PublishFlags& flags) {
  PublishSpec spec;
  spec.key = MakeKey(flags.key.data_id, flags.key.group, flags.key.instance_id);
  spec.data = flags.data;
  spec.app_name = flags.app_name;
  spec.zone = flags.zone;
  if (absl::Status s = ParseAttributes(flags.attributes, &spec.attributes); !s.ok()) {
    return ReportError(s);
  }
  auto client = Connect(global, flags.client_id, Millis(flags.timeout_seconds));
  if (!client.ok()) return ReportError(client.status());
  absl::StatusOr<std::shared_ptr<Publisher>> publisher = (*client)->Publish(spec);
  if (!publisher.ok()) return ReportError(ExplainConnectFailure(publisher.status(), global.tls));

  const std::string id = KeyText(spec.key);
  if (global.json()) {
    google::protobuf::Struct line;
    auto& fields = *line.mutable_fields();
    fields["data_info_id"].set_string_value(id);
    fields["registration_id"].set_string_value((*publisher)->registration_id());
    fields["version"].set_number_value(static_cast<double>((*publisher)->version()));
    fields["datum_version"].set_number_value(static_cast<double>((*publisher)->datum_version()));
    fields["server"].set_string_value((*client)->ConnectedServer());
    PrintLine(ToJson(line));
  } else {
    PrintLine(absl::StrCat("published ", id, " registration=", (*publisher)->registration_id(),
                           " version=", (*publisher)->datum_version()));
  }

  if (flags.for_seconds > 0) {
    WaitForSignal(Millis(flags.for_seconds));
  } else {
    while (!WaitForSignal(milliseconds(3600 * 1000))) {
    }
  }
  // Best effort: the server also drops the publisher when the stream ends.
  (void)(*publisher)->Unregister();
  (*client)->Close();
  return kExitOk;
}

int RunSubscribe(const GlobalFlags& global, const SubscribeFlags& flags) {
  SubscribeSpec spec;
  spec.key = MakeKey(flags.key.data_id, flags.key.group, flags.key.instance_id);
  spec.scope = ParseScope(flags.scope);
  spec.zone = flags.zone;

  milliseconds request_timeout(5000);
  if (flags.timeout_seconds > 0) {
    request_timeout = std::min(request_timeout, Millis(flags.timeout_seconds));
  }
  // Pushes arrive serialized on the client's dispatch thread. Declared before
  // the client so it outlives every callback.
  std::atomic<int> printed{0};
  auto on_push = [&printed, once = flags.once](const pb::Push& push) {
    if (once && printed.load() > 0) return;
    PrintLine(ToJson(push));
    printed.fetch_add(1);
  };
  const auto started = std::chrono::steady_clock::now();
  auto client = Connect(global, flags.client_id, request_timeout);
  if (!client.ok()) return ReportError(client.status());
  absl::StatusOr<std::shared_ptr<Subscription>> subscription = (*client)->Subscribe(spec, on_push);
  if (!subscription.ok()) {
    return ReportError(ExplainConnectFailure(subscription.status(), global.tls));
  }

  const auto deadline = started + Millis(flags.timeout_seconds);
  bool timed_out = false;
  while (!(flags.once && printed.load() > 0)) {
    milliseconds slice(100);
    if (flags.timeout_seconds > 0) {
      auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= milliseconds(0)) {
        timed_out = true;
        break;
      }
      slice = std::min(slice, left);
    }
    if (WaitForSignal(slice)) break;
  }
  // Close before the handle goes so no callback runs after `printed` is gone.
  (*client)->Close();
  if (timed_out && printed.load() == 0) return kExitNothing;
  return kExitOk;
}

}  // namespace cairn::cli
