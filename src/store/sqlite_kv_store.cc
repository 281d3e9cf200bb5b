#include <sqlite3.h>

#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "store/kv_store.h"

namespace cairn {
namespace {

// One connection guarded by a mutex: writes here are rare (configuration,
// watermarks), so contention does not matter and one handle keeps it simple.
class SqliteKvStore final : public KvStore {
 public:
  explicit SqliteKvStore(sqlite3* db) : db_(db) {}
  ~SqliteKvStore() override { sqlite3_close(db_); }

  absl::StatusOr<std::string> Get(std::string_view key) override {
    std::lock_guard lock(mu_);
    Statement stmt(db_, "SELECT value FROM kv WHERE key = ?1");
    if (!stmt.ok()) return Error("prepare get");
    sqlite3_bind_text(stmt.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("no key ", std::string(key)));
    if (rc != SQLITE_ROW) return Error("get");
    const void* blob = sqlite3_column_blob(stmt.get(), 0);
    int size = sqlite3_column_bytes(stmt.get(), 0);
    return std::string(static_cast<const char*>(blob), static_cast<size_t>(size));
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    Statement stmt(db_,
                   "INSERT INTO kv(key, value) VALUES(?1, ?2) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!stmt.ok()) return Error("prepare put");
    sqlite3_bind_text(stmt.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(stmt.get(), 2, value.data(), static_cast<int>(value.size()),
                      SQLITE_TRANSIENT);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("put");
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    std::lock_guard lock(mu_);
    Statement stmt(db_, "DELETE FROM kv WHERE key = ?1");
    if (!stmt.ok()) return Error("prepare delete");
    sqlite3_bind_text(stmt.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("delete");
    return absl::OkStatus();
  }

  absl::StatusOr<std::map<std::string, std::string>> Scan(std::string_view prefix) override {
    std::lock_guard lock(mu_);
    // Range scan [prefix, prefix + 0xFF): keys are compared as bytes (BLOB-like
    // ordering of TEXT under the default BINARY collation).
    Statement stmt(db_,
                   "SELECT key, value FROM kv WHERE key >= ?1 AND substr(key, 1, ?2) = ?1 "
                   "ORDER BY key");
    if (!stmt.ok()) return Error("prepare scan");
    sqlite3_bind_text(stmt.get(), 1, prefix.data(), static_cast<int>(prefix.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int(stmt.get(), 2, static_cast<int>(prefix.size()));
    std::map<std::string, std::string> out;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      const char* k = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
      const void* v = sqlite3_column_blob(stmt.get(), 1);
      int vsize = sqlite3_column_bytes(stmt.get(), 1);
      out.emplace(k, std::string(static_cast<const char*>(v), static_cast<size_t>(vsize)));
    }
    if (rc != SQLITE_DONE) return Error("scan");
    return out;
  }

 private:
  class Statement {
   public:
    Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
    ~Statement() { sqlite3_finalize(stmt_); }
    bool ok() const { return stmt_ != nullptr; }
    sqlite3_stmt* get() { return stmt_; }

   private:
    sqlite3_stmt* stmt_ = nullptr;
  };

  absl::Status Error(std::string_view what) {
    return absl::InternalError(
        absl::StrCat("sqlite ", std::string(what), ": ", sqlite3_errmsg(db_)));
  }

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> OpenSqliteKvStore(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory ", dir, ": ", ec.message()));
  }
  std::string path = (std::filesystem::path(dir) / "cairn.db").string();
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path, ": ", msg));
  }
  const char* setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "PRAGMA busy_timeout=5000;"
      // The store is read at startup and written rarely (a revision, the
      // version watermark): SQLite's default page cache (up to 2 MiB) would
      // only keep copies of what was last written, e.g. ~1.3 MB of app
      // revisions the registry already holds in memory. The OS caches the file.
      "PRAGMA cache_size=-128;"
      "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);";
  char* err = nullptr;
  if (sqlite3_exec(db, setup, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot initialise ", path, ": ", msg));
  }
  return std::unique_ptr<KvStore>(new SqliteKvStore(db));
}

}  // namespace cairn
