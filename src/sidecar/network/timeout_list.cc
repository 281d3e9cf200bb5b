#include "sidecar/network/timeout_list.h"

#include "sidecar/network/worker.h"

namespace cairn::sidecar {

void TimeoutNode::Cancel() {
  if (list_ != nullptr) list_->Unlink(this);
}

TimeoutList::TimeoutList(Worker& worker, std::chrono::milliseconds duration)
    : worker_(worker), duration_(duration) {}

TimeoutList::~TimeoutList() {
  while (head_ != nullptr) Unlink(head_);
  if (timer_armed_) worker_.CancelTimer(timer_);
}

void TimeoutList::Add(TimeoutNode* node) {
  if (node->list_ != nullptr) node->list_->Unlink(node);
  node->list_ = this;
  node->deadline_ = std::chrono::steady_clock::now() + duration_;
  node->prev_ = tail_;
  node->next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = node;
  } else {
    head_ = node;
  }
  tail_ = node;
  ++size_;
  if (!timer_armed_) ArmTimer();
}

void TimeoutList::Unlink(TimeoutNode* node) {
  if (node->prev_ != nullptr) {
    node->prev_->next_ = node->next_;
  } else {
    head_ = node->next_;
  }
  if (node->next_ != nullptr) {
    node->next_->prev_ = node->prev_;
  } else {
    tail_ = node->prev_;
  }
  node->prev_ = node->next_ = nullptr;
  node->list_ = nullptr;
  --size_;
  // The timer stays armed for the old head: when it fires it finds nothing
  // due and re-arms for the new head. Cheaper than re-arming per cancel.
}

void TimeoutList::ArmTimer() {
  timer_armed_ = true;
  timer_ = worker_.RunAt(head_->deadline_, [this] {
    timer_armed_ = false;
    Fire();
  });
}

void TimeoutList::Fire() {
  auto now = std::chrono::steady_clock::now();
  while (head_ != nullptr && head_->deadline_ <= now) {
    TimeoutNode* due = head_;
    Unlink(due);
    due->OnTimeout();  // may add or cancel other nodes, or destroy `due`
  }
  if (head_ != nullptr && !timer_armed_) ArmTimer();
}

}  // namespace cairn::sidecar
