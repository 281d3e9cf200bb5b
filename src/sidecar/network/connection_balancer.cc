#include "sidecar/network/connection_balancer.h"

namespace cairn::sidecar {

ConnectionBalancer::ConnectionBalancer(std::vector<Worker*> workers, int slack)
    : workers_(std::move(workers)),
      slack_(slack),
      incoming_(new std::atomic<int>[workers_.size()]) {
  for (size_t i = 0; i < workers_.size(); ++i) incoming_[i].store(0, std::memory_order_relaxed);
}

int ConnectionBalancer::Load(size_t i) const {
  return workers_[i]->downstream_connections() + incoming_[i].load(std::memory_order_relaxed);
}

Worker& ConnectionBalancer::Pick(Worker& acceptor) {
  size_t self = static_cast<size_t>(acceptor.index());
  if (workers_.size() < 2 || self >= workers_.size()) return acceptor;
  size_t lightest = self;
  int lightest_load = Load(self);
  const int own_load = lightest_load;
  for (size_t i = 0; i < workers_.size(); ++i) {
    int load = Load(i);
    if (load < lightest_load) {
      lightest = i;
      lightest_load = load;
    }
  }
  if (lightest == self || own_load <= lightest_load + slack_) return acceptor;
  incoming_[lightest].fetch_add(1, std::memory_order_relaxed);
  handoffs_.fetch_add(1, std::memory_order_relaxed);
  return *workers_[lightest];
}

void ConnectionBalancer::Arrived(Worker& target) {
  size_t i = static_cast<size_t>(target.index());
  if (i < workers_.size()) incoming_[i].fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace cairn::sidecar
