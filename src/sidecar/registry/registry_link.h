// The sidecar's link to the Cairn registry: subscribe to a cluster's
// endpoints, publish an inbound listener's endpoint.
//
// Why an interface, loaded on demand: the registry speaks gRPC, and merely
// mapping gRPC, protobuf and OpenSSL costs a process ~8 MB of resident memory
// before it does anything (measured: a do-nothing binary linked with grpc++
// has 9.5 MB RSS, a plain one 1.2 MB). A sidecar whose clusters are all
// static never needs it, so the gRPC implementation lives in a module
// (libcairn_sidecar_registry.so) that LoadRegistryLink() dlopens only when the
// config names the registry. See docs/decisions.md.
//
// Thread-safety: every method may be called from any thread. Subscribe and
// Publish block until the registry answers (or the link is closed), so the
// sidecar calls them off its event loops. Push callbacks run on a thread of
// the link; they must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::sidecar {

struct RegistryDataKey {
  std::string data_id;
  std::string group;
  std::string instance_id;
};

// One push of a subscribed dataInfoId: every publisher's data, flattened.
struct RegistryEndpoints {
  uint64_t version = 0;
  std::vector<std::string> data;
};

struct RegistryPublishSpec {
  RegistryDataKey key;
  std::string app_name;
  std::string zone;
  std::vector<std::string> data;
};

// A live publication. Unregister() withdraws it and waits for the registry;
// destroying a handle not yet unregistered withdraws it in the background.
// After Close() of the link both are no-ops (the registry drops the
// connection's publications by itself).
class RegistryPublication {
 public:
  virtual ~RegistryPublication() = default;
  virtual absl::Status Unregister() = 0;
};

// A live subscription. Destroying it unsubscribes; it returns only when no
// push callback of it is running, and none starts afterwards.
class RegistrySubscription {
 public:
  virtual ~RegistrySubscription() = default;
};

struct RegistryLinkOptions {
  std::vector<std::string> servers;  // HOST:PORT of registry session servers
  std::string client_id;
  int keepalive_interval_ms = 3000;
};

class RegistryLink {
 public:
  virtual ~RegistryLink() = default;

  // Blocks until the registry confirms the subscription. `on_push` gets the
  // current endpoints at once and every change after (newest version only).
  // CANCELLED once the link is closed.
  virtual absl::StatusOr<std::shared_ptr<RegistrySubscription>> Subscribe(
      const RegistryDataKey& key, std::function<void(RegistryEndpoints)> on_push) = 0;

  // Blocks until the registry has stored the publication.
  virtual absl::StatusOr<std::shared_ptr<RegistryPublication>> Publish(
      const RegistryPublishSpec& spec) = 0;

  // Fails calls in flight with CANCELLED and drops the connection (the
  // registry then removes this link's publications). Idempotent.
  virtual void Close() = 0;
};

// Loads the gRPC module and creates a link. Searches, in order: the directory
// in $CAIRN_MODULE_DIR, <executable dir>/../lib/cairn, <executable dir>.
// FAILED_PRECONDITION naming the paths tried when the module is missing.
absl::StatusOr<std::unique_ptr<RegistryLink>> LoadRegistryLink(const RegistryLinkOptions& options);

// The module's one entry point (C linkage, so dlsym finds it by name).
// Returns a RegistryLink* the caller owns, or nullptr with `error` set.
using CreateRegistryLinkFn = RegistryLink* (*)(const RegistryLinkOptions& options,
                                               std::string* error);
inline constexpr char kCreateRegistryLinkSymbol[] = "cairn_create_registry_link";

}  // namespace cairn::sidecar
