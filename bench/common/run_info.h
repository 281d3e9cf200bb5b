// What every benchmark's run record says about where and when it ran: the
// machine, the load, the time, and a command's output (the commit). Shared
// by bench/registry and bench/xds.
//
// Thread-safety: each function reads /proc or runs a command; call from one
// thread.
#pragma once

#include <string>

namespace cairn::bench {

// "2 CPUs, <model>, 23.6 GiB RAM": the figures mean little without it.
std::string MachineLine();
// The 1, 5 and 15 minute load averages, "0.12 0.34 0.56".
std::string LoadAverage();
// "2026-12-08T03:13:00Z".
std::string UtcNow();
// The command's stdout, trailing newlines and spaces removed ("" if it fails).
std::string CommandOutput(const std::string& command);
// The first line of a file ("" if it cannot be read).
std::string ReadFirstLine(const std::string& path);

}  // namespace cairn::bench
