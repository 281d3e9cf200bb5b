#include "sidecar/network/connection_balancer.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vector>

namespace cairn::sidecar {
namespace {

class NullHandler : public Worker::FdHandler {
 public:
  void OnFdEvents(uint32_t) override {}
};

// Adds `count` client connections to `worker`'s load (on its thread) for
// the life of the object.
class Load {
 public:
  Load(Worker& worker, int count) : worker_(worker), count_(count) {
    worker_.RunAndWait([this] { worker_.AddDownstream(count_); });
  }
  ~Load() {
    worker_.RunAndWait([this] { worker_.AddDownstream(-count_); });
  }

 private:
  Worker& worker_;
  int count_;
};

// Watches `count` eventfds on `worker`: descriptors that are not client
// connections (as idle pooled upstream connections are not).
class Watched {
 public:
  Watched(Worker& worker, int count) : worker_(worker) {
    worker_.RunAndWait([this, count] {
      for (int i = 0; i < count; ++i) {
        int fd = eventfd(0, EFD_NONBLOCK);
        uint64_t token = 0;
        ASSERT_TRUE(worker_.Watch(fd, &handler_, &token).ok());
        fds_.push_back({fd, token});
      }
    });
  }
  ~Watched() {
    worker_.RunAndWait([this] {
      for (auto [fd, token] : fds_) {
        worker_.Unwatch(fd, token);
        close(fd);
      }
    });
  }

 private:
  Worker& worker_;
  NullHandler handler_;
  std::vector<std::pair<int, uint64_t>> fds_;
};

class ConnectionBalancerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    w0_.Start();
    w1_.Start();
  }
  void TearDown() override {
    w0_.Stop();
    w1_.Stop();
  }
  Worker w0_{0};
  Worker w1_{1};
};

TEST_F(ConnectionBalancerTest, KeepsWhatItAcceptsWhileWithinTheSlack) {
  ConnectionBalancer balancer({&w0_, &w1_}, /*slack=*/2);
  Load load(w0_, 2);
  EXPECT_EQ(&balancer.Pick(w0_), &w0_);
  EXPECT_EQ(&balancer.Pick(w1_), &w1_);  // the lighter one always keeps its own
  EXPECT_EQ(balancer.handoffs(), 0u);
}

TEST_F(ConnectionBalancerTest, HandsOverToTheLightestWorkerBeyondTheSlack) {
  ConnectionBalancer balancer({&w0_, &w1_}, /*slack=*/2);
  Load load(w0_, 5);
  EXPECT_EQ(w0_.downstream_connections(), 5);
  EXPECT_EQ(&balancer.Pick(w0_), &w1_);
  EXPECT_EQ(balancer.handoffs(), 1u);
}

// A burst of accepts on one worker must not all go to the other one: the
// connections in flight count towards the target's load.
TEST_F(ConnectionBalancerTest, ABurstIsSplitNotMovedWholesale) {
  ConnectionBalancer balancer({&w0_, &w1_}, /*slack=*/0);
  Load load(w0_, 10);
  int moved = 0;
  for (int i = 0; i < 10; ++i) {
    if (&balancer.Pick(w0_) == &w1_) ++moved;
  }
  // w0 keeps 10 watched; w1 takes posted ones until its load (incoming)
  // reaches w0's: 10 moves at most, and never more than the difference.
  EXPECT_EQ(moved, 10);
  EXPECT_EQ(&balancer.Pick(w0_), &w0_);  // now even: 10 vs 10
  for (int i = 0; i < 10; ++i) balancer.Arrived(w1_);
  // The posted connections never got watched (the test dropped them), so
  // w1 is light again and takes the next one.
  EXPECT_EQ(&balancer.Pick(w0_), &w1_);
}

// Idle upstream connections left from an earlier load are not load: they
// must not push every new client connection to the other worker.
TEST_F(ConnectionBalancerTest, OtherDescriptorsDoNotCount) {
  ConnectionBalancer balancer({&w0_, &w1_}, /*slack=*/0);
  Watched upstreams(w0_, 50);
  EXPECT_EQ(&balancer.Pick(w0_), &w0_);
  EXPECT_EQ(balancer.handoffs(), 0u);
}

TEST_F(ConnectionBalancerTest, DefaultSlackKeepsClientConnectionsEven) {
  ConnectionBalancer balancer({&w0_, &w1_});
  Load load(w0_, 1);
  EXPECT_EQ(&balancer.Pick(w0_), &w1_);  // 1 vs 0: the next one goes to w1
}

TEST_F(ConnectionBalancerTest, OneWorkerNeverHandsOff) {
  ConnectionBalancer balancer({&w0_}, /*slack=*/0);
  Load load(w0_, 3);
  EXPECT_EQ(&balancer.Pick(w0_), &w0_);
}

}  // namespace
}  // namespace cairn::sidecar
