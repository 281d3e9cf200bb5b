#include "workload_util.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace cairn::bench {

std::string InstanceData(const std::string& service, const std::string& instance, uint64_t gen) {
  std::string data = absl::StrCat("g=", gen, "|", service, "/", instance, "|");
  data.resize(std::max<size_t>(data.size(), 100), 'x');
  return data;
}

uint64_t ParseGen(std::string_view data) {
  if (data.size() < 3 || data[0] != 'g' || data[1] != '=') return 0;
  uint64_t gen = 0;
  for (size_t i = 2; i < data.size() && data[i] >= '0' && data[i] <= '9'; ++i) {
    gen = gen * 10 + static_cast<uint64_t>(data[i] - '0');
  }
  return gen;
}

std::string CommonPrefix(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string prefix = names.front();
  for (const auto& n : names) {
    size_t i = 0;
    while (i < prefix.size() && i < n.size() && prefix[i] == n[i]) ++i;
    prefix.resize(i);
  }
  return prefix;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void Results::Add(const std::string& workload, const std::string& system, const std::string& metric,
                  double value, const std::string& unit) {
  std::lock_guard lock(mu_);
  records_.push_back({workload, system, metric, value, unit, "", -1, NAN, 0});
}

void Results::Add(Record record) {
  std::lock_guard lock(mu_);
  records_.push_back(std::move(record));
}

std::vector<Record> Results::records() const {
  std::lock_guard lock(mu_);
  return records_;
}

void Tally::Fail(const std::string& what) {
  std::lock_guard lock(mu_);
  if (failed_++ == 0) first_ = what;
}

int64_t Tally::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void Tally::Report(Results& results, const std::string& workload, const std::string& system) const {
  std::lock_guard lock(mu_);
  results.Add(workload, system, "errors", static_cast<double>(failed_), "count");
  if (failed_ > 0) {
    std::cerr << workload << "/" << system << ": " << failed_ << " error(s), first: " << first_
              << "\n";
  }
}

void ParallelFor(int count, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (int i = 0; i < count; ++i) threads.emplace_back([&fn, i] { fn(i); });
  for (auto& t : threads) t.join();
}

absl::StatusOr<std::vector<std::unique_ptr<Connection>>> ConnectMany(System& system, int count) {
  std::vector<std::unique_ptr<Connection>> connections(count);
  std::mutex mu;
  absl::Status first_error;
  std::atomic<int> next{0};
  // A few at a time: enough to hide round trips, few enough not to make
  // connecting itself a load test.
  ParallelFor(std::min(count, 8), [&](int) {
    for (int i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      auto c = system.Connect();
      std::lock_guard lock(mu);
      if (c.ok()) {
        connections[i] = std::move(*c);
      } else if (first_error.ok()) {
        first_error = c.status();
      }
    }
  });
  if (!first_error.ok()) return first_error;
  return connections;
}

Pump::Pump(Connection& connection, Namer name, int64_t count, int window, int batch_max,
           Clock::time_point deadline, Tally& tally)
    : connection_(connection),
      name_(std::move(name)),
      count_(count),
      window_(std::max(window, 1)),
      batch_max_(std::max(batch_max, 1)),
      deadline_(deadline),
      tally_(tally) {
  latencies_.reserve(static_cast<size_t>(count));
}

void Pump::Start() { Issue(); }

void Pump::Issue() {
  std::unique_lock lock(mu_);
  // A done callback may run inside Publish (immediate failure) or on another
  // thread while this loop runs: both only ask the running loop to go on, so
  // the stack never grows with the number of publishes.
  if (issuing_) {
    reissue_ = true;
    return;
  }
  issuing_ = true;
  do {
    reissue_ = false;
    while (in_flight_ < window_ && next_ < count_ && !stopped_) {
      if (Clock::now() > deadline_) {
        stopped_ = true;
        cv_.notify_all();
        break;
      }
      // As much of the free window as one batch may carry.
      const int64_t take = std::min({window_ - in_flight_, int64_t{batch_max_}, count_ - next_});
      const int64_t first = next_;
      next_ += take;
      in_flight_ += take;
      lock.unlock();
      std::vector<PublishRequest> batch(static_cast<size_t>(take));
      for (int64_t i = 0; i < take; ++i) {
        auto& r = batch[static_cast<size_t>(i)];
        name_(first + i, &r.service, &r.instance);
        r.data = InstanceData(r.service, r.instance, 0);
      }
      auto started = Clock::now();
      connection_.PublishBatch(std::move(batch),
                               [this, started](int64_t answered, const absl::Status& s) {
                                 OnDone(answered, s, started);
                               });
      lock.lock();
    }
  } while (reissue_);
  issuing_ = false;
  cv_.notify_all();
}

void Pump::OnDone(int64_t answered, const absl::Status& status, Clock::time_point started) {
  // Every registration an answer covers took as long as the request that
  // carried it.
  double ms = Ms(Clock::now() - started);
  if (!status.ok()) tally_.Fail(status);
  {
    std::lock_guard lock(mu_);
    in_flight_ -= answered;
    ++callbacks_running_;  // keeps Wait from returning while this runs
    if (status.ok()) {
      ok_ += answered;
      latencies_.insert(latencies_.end(), static_cast<size_t>(answered), ms);
    }
  }
  Issue();
  std::lock_guard lock(mu_);
  --callbacks_running_;
  // The last use of `this`: once the lock is released Wait may return and
  // the pump be destroyed.
  cv_.notify_all();
}

bool Pump::Wait(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] {
    return in_flight_ == 0 && callbacks_running_ == 0 && !issuing_ && (next_ == count_ || stopped_);
  });
}

int64_t Pump::ok() const {
  std::lock_guard lock(mu_);
  return ok_;
}

std::vector<double> Pump::TakeLatencies() {
  std::lock_guard lock(mu_);
  return std::move(latencies_);
}

void AddPercentiles(Results& results, const std::string& workload, const std::string& system,
                    const std::string& prefix, std::vector<double> values, bool with_max) {
  std::sort(values.begin(), values.end());
  results.Add(workload, system, prefix + "_p50_ms", Percentile(values, 0.50), "ms");
  results.Add(workload, system, prefix + "_p99_ms", Percentile(values, 0.99), "ms");
  results.Add(workload, system, prefix + "_p999_ms", Percentile(values, 0.999), "ms");
  if (with_max) {
    results.Add(workload, system, prefix + "_max_ms", values.empty() ? NAN : values.back(), "ms");
  }
}

}  // namespace cairn::bench
