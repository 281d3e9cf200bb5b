// The sidecar's link to the Cairn registry: subscribe to a cluster's
// endpoints, publish an inbound listener's endpoint, and the application-level
// operations (revisions, app instances, app subscriptions; see
// docs/ARCHITECTURE.md, "Application-level discovery").
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
#include <map>
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

// One interface an app revision serves, with its parameters (version,
// protocol, serialization, weight...: what interface-level URLs carry).
struct RegistryInterface {
  RegistryDataKey key;
  std::map<std::string, std::string> params;
};

// What RegisterRevision registers. The id is the registry client's content
// hash (SHA-256 of the canonical content), so the same set of interfaces
// always gives the same revision, on every sidecar.
struct RegistryRevisionSpec {
  std::string app_name;
  std::vector<RegistryInterface> interfaces;
};

// A revision as stored: interface keys normalized, `id` the dataInfoId of
// each key (the string DataInfoIdOf gives).
struct RegistryRevision {
  struct Interface {
    std::string id;
    std::map<std::string, std::string> params;
  };
  std::string revision;
  std::string app_name;
  std::vector<Interface> interfaces;
};

// One app instance, published as `app:<APP>` with attribute cairn.revision.
struct RegistryAppInstanceSpec {
  std::string app_name;
  std::string revision;                // from RegisterRevision
  std::vector<std::string> endpoints;  // "http://127.0.0.1:15006", at least one
  std::string zone;
};

// One push of `app:<APP>`: every entry visible to this subscriber. An entry is
// either an app instance (`revision` set) or, while the app migrates, one of
// its interface-level publishers (`interface_id` set: the dataInfoId its URLs
// serve; the registry already dropped those whose endpoint an instance with a
// revision serving that interface covers).
struct RegistryAppEntry {
  std::string revision;
  std::string interface_id;
  std::vector<std::string> data;
};
struct RegistryAppPush {
  uint64_t version = 0;
  std::vector<RegistryAppEntry> entries;
};

// Who serves one interface: the registry's interface -> apps index
// (DescribeInterface) plus, while interface-level publishers remain, their
// app names (Describe of the interface). An app's `app:<APP>` datum holds its
// app-level instances and its interface-level publishers, so subscribing to
// every app listed here sees every provider, except the `unattributed` ones.
struct RegistryInterfaceApps {
  std::vector<std::string> apps;      // sorted, unique
  uint32_t interface_publishers = 0;  // interface-level publishers of the interface
  uint32_t unattributed = 0;          // of those, the ones without an app name
};

// A live publication. Unregister() withdraws it and waits for the registry;
// destroying a handle not yet unregistered withdraws it in the background.
// After Close() of the link both are no-ops (the registry drops the
// connection's publications by itself).
class RegistryPublication {
 public:
  virtual ~RegistryPublication() = default;
  virtual absl::Status Unregister() = 0;
  // Replaces the data (endpoints) and waits for the registry. Attributes, and
  // thus an app instance's revision, do not change: publish anew for that.
  virtual absl::Status Republish(std::vector<std::string> data) = 0;
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
  // TLS to the registry (all empty: plaintext). PEM file paths; see
  // TlsFiles in common/grpc_tls.h, which the module builds from them.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
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

  // ---- Application-level discovery. Blocking like Publish/Subscribe.

  // Registers a revision (idempotent) and returns its id. The link re-sends
  // its revisions after a reconnect, before replaying app instances.
  virtual absl::StatusOr<std::string> RegisterRevision(const RegistryRevisionSpec& spec) = 0;

  // Publishes an app instance. REQUIRES: its revision registered on this link.
  virtual absl::StatusOr<std::shared_ptr<RegistryPublication>> PublishApp(
      const RegistryAppInstanceSpec& spec) = 0;

  // Subscribes to `app:<APP>`; `on_push` as for Subscribe.
  virtual absl::StatusOr<std::shared_ptr<RegistrySubscription>> SubscribeApp(
      const std::string& app_name, std::function<void(RegistryAppPush)> on_push) = 0;

  // A revision's metadata. Cached by the link (revisions are immutable).
  virtual absl::StatusOr<RegistryRevision> GetRevision(const std::string& revision) = 0;

  // Which apps serve an interface (see RegistryInterfaceApps), asked of the
  // connected server (else each server in turn). One or two unary RPCs.
  virtual absl::StatusOr<RegistryInterfaceApps> AppsServing(const RegistryDataKey& key) = 0;

  // The normalized dataInfoId of a key: what RegistryRevision::Interface::id
  // and RegistryAppEntry::interface_id hold. Pure; never blocks.
  virtual std::string DataInfoIdOf(const RegistryDataKey& key) = 0;

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
