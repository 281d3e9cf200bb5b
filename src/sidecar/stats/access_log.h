// AccessLog: where every protocol's request path writes one line per
// finished request (the sidecar's `access_log` file; tests plug their own).
#pragma once

#include <string>

namespace cairn::sidecar {

class AccessLog {
 public:
  virtual ~AccessLog() = default;
  // One line per finished request. Thread-safety: called from any worker.
  virtual void Log(const std::string& line) = 0;
};

}  // namespace cairn::sidecar
