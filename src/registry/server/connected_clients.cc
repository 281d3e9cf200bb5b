#include "registry/server/connected_clients.h"

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cairn {

std::string ConnectedClientsRecorder::Encode(const RestartWarmup::ClientCounts& clients) {
  std::string out;
  for (const auto& [id, count] : clients) {
    // A client id is at most 128 bytes of anything; a newline would break
    // the line format, and such an id is only not waited for.
    if (count == 0 || id.find('\n') != std::string::npos) continue;
    absl::StrAppend(&out, count, " ", id, "\n");
  }
  return out;
}

RestartWarmup::ClientCounts ConnectedClientsRecorder::Decode(std::string_view value) {
  RestartWarmup::ClientCounts clients;
  // This abseil's string_view is its own type.
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(value.data(), value.size()), '\n', absl::SkipEmpty())) {
    size_t space = line.find(' ');
    uint32_t count = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, space), &count)) {
      continue;
    }
    clients[std::string(line.substr(space + 1))] += count;
  }
  return clients;
}

RestartWarmup::ClientCounts ConnectedClientsRecorder::Load(KvStore& store) {
  auto value = store.Get(kKey);
  if (!value.ok()) {
    if (!absl::IsNotFound(value.status())) {
      spdlog::warn("cannot read the clients of the previous run ({}): no restart warm-up",
                   value.status().ToString());
    }
    return {};
  }
  return Decode(*value);
}

ConnectedClientsRecorder::ConnectedClientsRecorder(KvStore& store,
                                                   std::chrono::milliseconds min_period)
    : store_(store), min_period_(min_period) {
  writer_ = std::thread([this] { WriterLoop(); });
}

ConnectedClientsRecorder::~ConnectedClientsRecorder() { Stop(std::nullopt); }

void ConnectedClientsRecorder::Offer(RestartWarmup::ClientCounts clients) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  pending_ = std::move(clients);
  cv_.notify_all();
}

void ConnectedClientsRecorder::Stop(std::optional<RestartWarmup::ClientCounts> last) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
    pending_.reset();
    cv_.notify_all();
  }
  if (writer_.joinable()) writer_.join();
  if (last.has_value()) Write(*last);
}

uint64_t ConnectedClientsRecorder::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

void ConnectedClientsRecorder::WriterLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || pending_.has_value(); });
    if (stopping_) return;
    RestartWarmup::ClientCounts clients = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    Write(clients);
    lock.lock();
    // Rate limit: offers made meanwhile wait and are coalesced.
    cv_.wait_for(lock, min_period_, [this] { return stopping_; });
  }
}

void ConnectedClientsRecorder::Write(const RestartWarmup::ClientCounts& clients) {
  std::lock_guard write_lock(write_mu_);
  if (auto s = store_.Put(kKey, Encode(clients)); !s.ok()) {
    spdlog::warn("cannot record the connected clients: {}", s.ToString());
    return;
  }
  std::lock_guard lock(mu_);
  ++writes_;
}

}  // namespace cairn
