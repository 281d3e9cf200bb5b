// Signal handling shared by the server programs.
#pragma once

#include <pthread.h>

#include <csignal>

namespace cairn {

// Blocks SIGINT and SIGTERM in every thread (threads inherit the mask), so
// that the main thread can wait for one with sigwait; ignores SIGPIPE so that
// a peer that closes while we write cannot kill the process. Call before
// starting any thread.
inline sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

}  // namespace cairn
