// KvStore: the embedded durable store for what must survive a restart
// (server identity, the version watermark, configuration and, later,
// application revisions). Ephemeral registrations never go here.
//
// Keys are namespaced by convention: "<area>/<name>", e.g. "meta/server_id".
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn {

class KvStore {
 public:
  virtual ~KvStore() = default;

  // Returns NotFound when the key is absent.
  virtual absl::StatusOr<std::string> Get(std::string_view key) = 0;
  // Durable once it returns OK (the write is committed and synced).
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;
  // Deleting an absent key is OK.
  virtual absl::Status Delete(std::string_view key) = 0;
  // Every key starting with prefix, in key order.
  virtual absl::StatusOr<std::map<std::string, std::string>> Scan(std::string_view prefix) = 0;
};

// Opens (creating if needed) the SQLite-backed store at dir/cairn.db. The
// database runs in WAL mode with synchronous=FULL: a Put that returned is on
// disk even if the process is killed right after.
absl::StatusOr<std::unique_ptr<KvStore>> OpenSqliteKvStore(const std::string& dir);

}  // namespace cairn
