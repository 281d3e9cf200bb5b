// Test support: real certificates from scripts/dev-certs.
//
// Thread-safety: none; use from the test thread. Needs CAIRN_SOURCE_DIR
// (the test target's compile definition) to find the script.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "process.h"

namespace cairn::testing {

// Runs `scripts/dev-certs DIR [NAME...]` (a CA in DIR/ca.crt unless DIR/ca.key
// exists, and DIR/NAME.crt + NAME.key pairs; no names: the default set).
// Returns the script's output on failure, empty on success.
inline std::string MakeDevCerts(const std::string& dir, std::vector<std::string> names = {}) {
  std::vector<std::string> argv = {CAIRN_SOURCE_DIR "/scripts/dev-certs", dir};
  argv.insert(argv.end(), names.begin(), names.end());
  auto [code, output] = RunCommand(argv, std::chrono::seconds(60));
  return code == 0 ? std::string() : "dev-certs failed (" + std::to_string(code) + "): " + output;
}

}  // namespace cairn::testing
