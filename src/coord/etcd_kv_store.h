// EtcdKvStore: the KvStore interface (store/kv_store.h) over etcd, for cluster
// mode. What standalone mode keeps in its embedded SQLite store
// (configuration, app revisions via NewKvRevisionStore, ...) lives in etcd in
// cluster mode, so every registry server of the cluster sees the same data.
//
// Layout: KvStore key K is etcd key `<key_prefix>K`. For a cluster the prefix
// is cluster::ClusterKeys(cluster).Kv(), i.e. "/cairn/<cluster>/kv/": two
// clusters sharing one etcd never see each other's keys. Scan(p) is one
// range read over `<key_prefix>p`; it returns the keys without key_prefix, in
// byte order, like the SQLite store.
//
// Semantics are those of the SQLite store (same conformance tests): Get of an
// absent key is NotFound, Delete of an absent key is OK, values are bytes
// (NUL included), an empty value is a present key.
//
// Durability: etcd answers a Put or Delete only after the write is committed
// to a quorum of its members' write-ahead logs (fsynced), so a Put that
// returned OK survives the loss of a minority of etcd members and any registry
// server. Reads are linearizable (etcd's default): a Get sees every Put that
// returned before it, from any server.
//
// While etcd is unreachable every call fails with the client's status:
// UNAVAILABLE at once when the connection is refused, DEADLINE_EXCEEDED after
// the client's request_timeout when etcd does not answer; nothing hangs and
// nothing is queued or retried here (a failed Get is never NotFound). A Put
// that failed with DEADLINE_EXCEEDED may still have been applied: callers that
// retry write the same value again, which is harmless for KvStore's users.
// Once etcd is back, gRPC reconnects by itself and calls succeed again;
// measured: up to ~10 s after a restarted etcd is healthy when calls were
// failing during the outage (a connection attempt made while etcd starts
// hangs that long), about 1 s otherwise.
//
// Limits: etcd refuses a request above its --max-request-bytes (1.5 MiB by
// default) and the client's channel a response above 4 MiB, so Scan is meant
// for prefixes of moderate total size (configuration, app revisions).
//
// Thread-safety: safe from any thread (EtcdClient is thread-safe; the store
// keeps no other state). The EtcdClient must outlive the store.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coord/etcd_client.h"
#include "store/kv_store.h"

namespace cairn::coord {

// Does not contact etcd (the first call does). InvalidArgument unless
// key_prefix is non-empty and ends with '/' (so that one prefix is never the
// start of another, e.g. "/cairn/a/kv/" and "/cairn/ab/kv/").
absl::StatusOr<std::unique_ptr<KvStore>> OpenEtcdKvStore(EtcdClient& client,
                                                         std::string key_prefix);

}  // namespace cairn::coord
