#include "sidecar/network/connection_handler.h"

#include <unistd.h>

#include <utility>

namespace cairn::sidecar {

ConnectionHandler::~ConnectionHandler() {
  *alive_ = false;
  Clear();
}

size_t ConnectionHandler::AddListener(ListenerSetup setup) {
  listeners_.push_back(std::move(setup));
  return listeners_.size() - 1;
}

void ConnectionHandler::Accept(size_t listener, int fd, ConnectionLimit::Slot slot) {
  if (listener >= listeners_.size()) {
    ::close(fd);
    return;
  }
  if (listeners_[listener].sniff) {
    Sniff(listener, fd, std::move(slot));
    return;
  }
  StartSession(listener, std::make_unique<Connection>(worker_, fd, nullptr), -1, std::move(slot));
}

void ConnectionHandler::StartSession(size_t listener, std::unique_ptr<Connection> connection,
                                     int first_byte, ConnectionLimit::Slot slot) {
  connection->CountAsDownstream();
  std::unique_ptr<DownstreamSession> session = listeners_[listener].make_session(
      std::move(connection), first_byte, [this](DownstreamSession* done) { Bury(done); });
  if (session == nullptr) return;  // refused: the connection closed with it
  DownstreamSession* raw = session.get();
  sessions_[raw] = Owned{std::move(session), std::move(slot)};
  raw->Start();
}

void ConnectionHandler::Sniff(size_t listener, int fd, ConnectionLimit::Slot slot) {
  auto sniffer = std::make_unique<ProtocolSniffer>(
      worker_, fd, [this, listener, slot](ProtocolSniffer* done, int sniffed_fd, uint8_t first) {
        auto it = sniffers_.find(done);
        if (it == sniffers_.end()) return;
        if (it->second.deadline != 0) worker_.CancelTimer(it->second.deadline);
        // Destroyed on a later turn: it is calling us.
        worker_.Post([doomed = std::shared_ptr<ProtocolSniffer>(std::move(it->second.sniffer))] {});
        sniffers_.erase(it);
        if (sniffed_fd < 0) return;  // closed before its first byte
        StartSession(listener, std::make_unique<Connection>(worker_, sniffed_fd, nullptr), first,
                     slot);
      });
  ProtocolSniffer* raw = sniffer.get();
  sniffers_[raw] = Sniffing{std::move(sniffer), 0};
  raw->Start();
  const auto timeout = listeners_[listener].first_byte_timeout;
  auto it = sniffers_.find(raw);
  if (timeout.count() > 0 && it != sniffers_.end()) {  // Start may have called back
    it->second.deadline = worker_.RunAfter(timeout, [this, raw, alive = alive_] {
      if (!*alive) return;
      sniffers_.erase(raw);  // closes the socket, frees its slot
    });
  }
}

void ConnectionHandler::Bury(DownstreamSession* session) {
  worker_.Post([this, session, alive = alive_] {
    if (*alive) sessions_.erase(session);
  });
}

void ConnectionHandler::Drain() {
  for (auto& [raw, sniffing] : sniffers_) {
    if (sniffing.deadline != 0) worker_.CancelTimer(sniffing.deadline);
  }
  sniffers_.clear();  // no byte yet: nothing in flight
  // Draining may finish a session at once: drain a snapshot.
  std::vector<DownstreamSession*> all;
  all.reserve(sessions_.size());
  for (auto& [raw, owned] : sessions_) all.push_back(raw);
  for (DownstreamSession* session : all) session->Drain();
}

void ConnectionHandler::Clear() {
  for (auto& [raw, sniffing] : sniffers_) {
    if (sniffing.deadline != 0) worker_.CancelTimer(sniffing.deadline);
  }
  sniffers_.clear();
  // Destroyed one by one: a session's destructor may not reach the others,
  // but it must not find the map half-destroyed either.
  while (!sessions_.empty()) {
    auto node = sessions_.extract(sessions_.begin());
    node.mapped().session.reset();
  }
}

}  // namespace cairn::sidecar
