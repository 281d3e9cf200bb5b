// TimeoutList: request timeouts of one duration on one worker, without a
// timer per request.
//
// Every request with the same timeout expires in the order it started, so a
// FIFO intrusive list is already sorted by deadline: adding is an append,
// cancelling an unlink (both O(1), no allocation), and one asio timer armed
// for the head serves the whole list. Measured on the sidecar's HTTP/1 path,
// a steady_timer per request (allocate, arm, cancel, run the aborted
// handler) was one of the costs removed between the first two rows of the
// step table in docs/benchmarks.md.
//
// Thread-safety: its worker's thread only.
#pragma once

#include <chrono>
#include <cstdint>

namespace cairn::sidecar {

class TimeoutList;
class Worker;

// Embed one in the object that can time out. Destroying it cancels it.
class TimeoutNode {
 public:
  virtual ~TimeoutNode() { Cancel(); }
  void Cancel();
  bool armed() const { return list_ != nullptr; }

 protected:
  // Runs on the worker when the deadline passes. The node is already
  // removed; the object may be destroyed inside.
  virtual void OnTimeout() = 0;

 private:
  friend class TimeoutList;
  class Worker;
  TimeoutList* list_ = nullptr;
  TimeoutNode* prev_ = nullptr;
  TimeoutNode* next_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
};

class TimeoutList {
 public:
  TimeoutList(Worker& worker, std::chrono::milliseconds duration);
  ~TimeoutList();  // unlinks (does not fire) what is left
  TimeoutList(const TimeoutList&) = delete;
  TimeoutList& operator=(const TimeoutList&) = delete;

  // Arms node to fire after this list's duration. A node already armed is
  // re-armed (moved to the tail).
  void Add(TimeoutNode* node);
  size_t size() const { return size_; }

 private:
  friend class TimeoutNode;
  void Unlink(TimeoutNode* node);
  void ArmTimer();
  void Fire();

  Worker& worker_;
  uint64_t timer_ = 0;  // Worker::TimerId, valid while timer_armed_
  std::chrono::milliseconds duration_;
  TimeoutNode* head_ = nullptr;
  TimeoutNode* tail_ = nullptr;
  size_t size_ = 0;
  bool timer_armed_ = false;
};

}  // namespace cairn::sidecar
