// PolicyReloader: keeps an Authorizer's policy in step with its file.
//
// The file is polled (inode, size and modification time) every `poll`
// interval, and reloaded at once when RequestPolicyReload() is called (the
// registry's main thread calls it on SIGHUP). A file that no longer parses
// keeps the old policy in force; the log says why, once per bad version of
// the file.
//
// Thread-safety: ReloadNow() and RequestPolicyReload() may be called from any
// thread; the poller runs on its own thread until the reloader is destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "registry/auth/authorizer.h"

namespace cairn::auth {

class PolicyReloader {
 public:
  // A version of the file: inode, size and modification time.
  struct FileStamp {
    uint64_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp Stamp(const std::string& path);

  // Starts watching `path` for `authorizer` (which must outlive this). The
  // file was already loaded by the caller (a startup error stops startup);
  // `loaded` is its stamp taken before that read, so that a file replaced
  // between the read and now is reloaded at the first poll.
  PolicyReloader(std::string path, Authorizer& authorizer, std::chrono::milliseconds poll,
                 FileStamp loaded);
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

  // Reads the file now: OK and swapped in, or the error (old policy kept).
  absl::Status ReloadNow();

  // Successful reloads so far (tests and logs).
  uint64_t reloads() const;

 private:
  void Run();

  const std::string path_;
  Authorizer& authorizer_;
  const std::chrono::milliseconds poll_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;     // guarded by mu_
  FileStamp last_stamp_;  // guarded by mu_: the version last read (good or bad)
  uint64_t reloads_ = 0;  // guarded by mu_
  std::mutex reload_mu_;  // one reload at a time
  std::thread thread_;    // last: starts after the fields above
};

// Reloads every live PolicyReloader now (SIGHUP). Safe from any thread, not
// from a signal handler.
void RequestPolicyReload();

}  // namespace cairn::auth
