// "HOST:PORT" parsing for listen addresses ("[v6]:port" accepted; the
// brackets are removed from the host). Pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace cairn {

absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& address);

}  // namespace cairn
