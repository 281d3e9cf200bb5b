// cairn-sidecar: the mesh sidecar program. Users run it as `cairn sidecar`
// (which execs this binary); see examples/ for configs.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "cmd/stop_signals.h"
#include "sidecar/server/sidecar_server.h"

int main(int argc, char** argv) {
  CLI::App app{"cairn sidecar: the mesh sidecar"};
  app.name("cairn sidecar");
  std::string config_file, ready_file, log_level = "info";
  app.add_option("--config", config_file, "YAML config file (see examples/)")->required();
  app.add_option("--ready-file", ready_file,
                 "write admin= and listener.NAME= addresses here when serving");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  auto config = cairn::sidecar::LoadSidecarConfig(config_file);
  if (!config.ok()) {
    std::fprintf(stderr, "cairn sidecar: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  sigset_t stop_signals = cairn::BlockStopSignals();
  // SIGHUP: read the TLS files again (blocked in every thread too).
  sigset_t wait_signals = stop_signals;
  sigaddset(&wait_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &wait_signals, nullptr);
  auto sidecar = cairn::sidecar::SidecarServer::Start(std::move(*config), ready_file);
  if (!sidecar.ok()) {
    spdlog::error("cannot start the sidecar: {}", sidecar.status().ToString());
    return 1;
  }
  int signal_number = 0;
  while (sigwait(&wait_signals, &signal_number) == 0 && signal_number == SIGHUP) {
    spdlog::info("received SIGHUP: reloading TLS certificates");
    (*sidecar)->ReloadTls();
  }
  spdlog::info("received {}: draining", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*sidecar)->Drain();
  return 0;
}
