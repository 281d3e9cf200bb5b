// The sidecar's network layer on a real worker thread: timers, posts,
// timeout lists, and connections over socket pairs.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "sidecar/network/connection.h"
#include "sidecar/network/timeout_list.h"
#include "sidecar/network/worker.h"

namespace cairn::sidecar {
namespace {

using std::chrono::milliseconds;

class RecordingNode : public TimeoutNode {
 public:
  RecordingNode(std::vector<int>& fired, int id) : fired_(fired), id_(id) {}
  void OnTimeout() override { fired_.push_back(id_); }

 private:
  std::vector<int>& fired_;
  int id_;
};

TEST(WorkerTest, TimersFireInDeadlineOrderAndCancelledOnesDoNot) {
  Worker worker(0);
  worker.Start();
  std::vector<int> fired;
  std::promise<void> done;
  worker.RunAndWait([&] {
    worker.RunAfter(milliseconds(30), [&] { fired.push_back(3); });
    worker.RunAfter(milliseconds(10), [&] { fired.push_back(1); });
    auto cancelled = worker.RunAfter(milliseconds(20), [&] { fired.push_back(99); });
    worker.RunAfter(milliseconds(20), [&] { fired.push_back(2); });
    worker.CancelTimer(cancelled);
    worker.RunAfter(milliseconds(40), [&] { done.set_value(); });
  });
  done.get_future().wait();
  worker.Stop();
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST(WorkerTest, PostsFromOtherThreadsRunInOrderOnTheWorker) {
  Worker worker(0);
  worker.Start();
  std::vector<int> seen;
  for (int i = 0; i < 100; ++i) {
    worker.Post([&, i] {
      EXPECT_TRUE(worker.InThread());
      seen.push_back(i);
    });
  }
  worker.RunAndWait([] {});
  worker.Stop();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(TimeoutListTest, ExpiresInStartOrderAndCancelUnlinks) {
  Worker worker(0);
  worker.Start();
  std::vector<int> fired;
  std::vector<std::unique_ptr<RecordingNode>> nodes;
  worker.RunAndWait([&] {
    TimeoutList& list = worker.Timeouts(milliseconds(30));
    for (int i = 0; i < 5; ++i) {
      nodes.push_back(std::make_unique<RecordingNode>(fired, i));
      list.Add(nodes.back().get());
    }
    nodes[1]->Cancel();
    nodes[3].reset();  // destroying a node cancels it
    EXPECT_EQ(list.size(), 3u);
    list.Add(nodes[0].get());  // re-arm: moves to the tail
  });
  std::this_thread::sleep_for(milliseconds(150));
  worker.RunAndWait([] {});
  EXPECT_EQ(fired, (std::vector<int>{2, 4, 0}));
  worker.RunAndWait([&] { nodes.clear(); });
  worker.Stop();
}

class Collector : public Connection::Handler {
 public:
  void OnRead(std::string_view data) override { received.append(data); }
  void OnClose(const std::error_code& ec) override {
    closed = true;
    close_error = ec;
  }
  std::string received;
  bool closed = false;
  std::error_code close_error;
};

TEST(ConnectionTest, WritesAreCoalescedAndReadsDelivered) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  Worker worker(0);
  worker.Start();
  Collector collector;
  std::unique_ptr<Connection> connection;
  worker.RunAndWait([&] {
    connection = std::make_unique<Connection>(worker, fds[0], &collector);
    connection->StartReading();
    // Three writes in one handler leave as one send: the peer reads them in
    // one piece.
    Worker::IoScope scope(worker);
    connection->Write(std::string_view("one "));
    connection->Write(std::string_view("two "));
    connection->Write(std::string_view("three"));
  });
  char buffer[64] = {};
  ssize_t n = read(fds[1], buffer, sizeof(buffer));
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "one two three");
  ASSERT_EQ(write(fds[1], "reply", 5), 5);
  for (int i = 0; i < 100; ++i) {
    std::string got;
    worker.RunAndWait([&] { got = collector.received; });
    if (got == "reply") break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  worker.RunAndWait([&] { EXPECT_EQ(collector.received, "reply"); });
  close(fds[1]);  // the peer goes away: OnClose
  for (int i = 0; i < 100; ++i) {
    bool closed = false;
    worker.RunAndWait([&] { closed = collector.closed; });
    if (closed) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  worker.RunAndWait([&] {
    EXPECT_TRUE(collector.closed);
    EXPECT_FALSE(connection->open());
    connection.reset();
  });
  worker.Stop();
}

TEST(ConnectionTest, PausedReadingKeepsDataUntilResumed) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  Worker worker(0);
  worker.Start();
  Collector collector;
  std::unique_ptr<Connection> connection;
  worker.RunAndWait([&] { connection = std::make_unique<Connection>(worker, fds[0], &collector); });
  ASSERT_EQ(write(fds[1], "early", 5), 5);
  std::this_thread::sleep_for(milliseconds(30));
  worker.RunAndWait([&] {
    EXPECT_EQ(collector.received, "");  // not reading yet
    connection->StartReading();         // edge-triggered: must not wait for a new edge
  });
  for (int i = 0; i < 100; ++i) {
    std::string got;
    worker.RunAndWait([&] { got = collector.received; });
    if (got == "early") break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  worker.RunAndWait([&] {
    EXPECT_EQ(collector.received, "early");
    connection.reset();
  });
  close(fds[1]);
  worker.Stop();
}

// A handler that pauses reading while a read burst is still going (the
// socket holds more than one turn's worth; here in the turn's last read) must
// stay paused: the connection must not re-arm its own "next turn" read.
TEST(ConnectionTest, PauseDuringALongReadBurstHolds) {
  Worker worker(0);
  worker.Start();
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  int sndbuf = 4 << 20;
  setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

  class PausingHandler : public Connection::Handler {
   public:
    void OnRead(std::string_view data) override {
      received += data.size();
      if (!paused && received >= 4 * Worker::kReadBufferSize) {
        paused = true;
        connection->PauseReading();
      }
    }
    void OnClose(const std::error_code&) override {}
    Connection* connection = nullptr;
    size_t received = 0;
    bool paused = false;
  };
  PausingHandler handler;
  std::unique_ptr<Connection> connection;
  worker.RunAndWait([&] {
    connection = std::make_unique<Connection>(worker, fds[0], &handler);
    handler.connection = connection.get();
  });
  // Far more than the 4 reads one turn allows.
  std::string bytes(16 * Worker::kReadBufferSize, 'z');
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fds[1], bytes.data() + sent, bytes.size() - sent, MSG_DONTWAIT);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ASSERT_GT(sent, 8 * Worker::kReadBufferSize);
  worker.RunAndWait([&] { connection->StartReading(); });
  std::this_thread::sleep_for(milliseconds(100));  // several loop turns
  size_t received = 0;
  worker.RunAndWait([&] { received = handler.received; });
  EXPECT_TRUE(handler.paused);
  EXPECT_EQ(received, 4 * Worker::kReadBufferSize) << "reading went on after the pause";
  worker.RunAndWait([&] { connection.reset(); });
  worker.Stop();
  close(fds[1]);
}

}  // namespace
}  // namespace cairn::sidecar
