// The anchor of the xDS bench: N Session API subscribers (the Cairn C++
// RegistryClient) to one service, spread over a few clients (one Session
// stream each), as the ADS streams are spread over channels. Every port in a
// push's data (`grpc://127.0.0.1:PORT`) is reported to the DeliveryTracker
// with the time the callback ran.
//
// Thread-safety: Start/Stop from one thread; the callbacks run on the
// clients' dispatch threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/registry_client.h"
#include "delivery.h"

namespace cairn::bench::xds {

struct SessionLoadOptions {
  std::string target;  // "127.0.0.1:PORT"
  int clients = 10;    // subscriber i on client i mod clients
  int subscribers = 1000;
  pb::DataInfoKey key;  // the watched service
  std::chrono::milliseconds timeout{60000};
};

class SessionLoad {
 public:
  SessionLoad(SessionLoadOptions options, DeliveryTracker* tracker);
  ~SessionLoad();  // Stop()
  SessionLoad(const SessionLoad&) = delete;
  SessionLoad& operator=(const SessionLoad&) = delete;

  // Connects the clients and subscribes every subscriber (each waits for the
  // server's Result; the pushes arrive in the background).
  absl::Status Start();
  // Unsubscribes nothing: closes the clients (the server drops their
  // subscriptions with the streams). Idempotent.
  void Stop();

 private:
  const SessionLoadOptions options_;
  DeliveryTracker* const tracker_;
  std::vector<std::unique_ptr<RegistryClient>> clients_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
};

// "grpc://127.0.0.1:PORT" -> PORT; 0 if the text is not of that form.
uint32_t PortOfUrl(const std::string& url);

}  // namespace cairn::bench::xds
