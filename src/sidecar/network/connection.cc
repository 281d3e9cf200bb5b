#include "sidecar/network/connection.h"

#include <asio/post.hpp>
#include <asio/write.hpp>

namespace cairn::sidecar {

Connection::Connection(Worker& worker, asio::ip::tcp::socket socket, Handler* handler)
    : worker_(worker), socket_(std::move(socket)), handler_(handler) {
  std::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

Connection::~Connection() {
  if (in_dirty_list_) worker_.RemoveDirty(this);
  Close();
}

void Connection::FlushFromWorker() {
  in_dirty_list_ = false;
  if (state_->open) FlushPending();
}

std::string Connection::PeerAddress() const {
  std::error_code ec;
  auto endpoint = socket_.remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

void Connection::StartReading() {
  reading_ = true;
  ArmRead();
}

void Connection::PauseReading() { reading_ = false; }

void Connection::ArmRead() {
  if (read_armed_ || !state_->open || !reading_) return;
  read_armed_ = true;
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [this, state = state_](const std::error_code& ec) {
                       if (!state->open) return;
                       read_armed_ = false;
                       OnReadable(ec);
                     });
}

void Connection::OnReadable(const std::error_code& wait_ec) {
  Worker::IoScope scope(worker_);
  if (wait_ec) {
    Fail(wait_ec);
    return;
  }
  std::shared_ptr<State> state = state_;
  // Read until the socket is drained or the owner pauses us; bounded so one
  // busy connection cannot starve the worker's other connections.
  for (int rounds = 0; rounds < 4 && reading_; ++rounds) {
    std::error_code ec;
    size_t n = socket_.read_some(asio::buffer(worker_.read_buffer(), Worker::kReadBufferSize), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) break;
    if (ec) {
      Fail(ec);
      return;
    }
    if (handler_ != nullptr) handler_->OnRead(std::string_view(worker_.read_buffer(), n));
    if (!state->open) return;  // closed or destroyed inside the callback
    if (n < Worker::kReadBufferSize) break;
  }
  ArmRead();
}

void Connection::Write(std::string& data) {
  if (!state_->open || data.empty()) {
    data.clear();
    return;
  }
  if (pending_.empty()) {
    pending_.swap(data);
  } else {
    pending_.append(data);
    data.clear();
  }
  // Coalesce: everything written during this loop turn (a response head and
  // its body, several pipelined responses) leaves in one send() at the end of
  // the turn. Posting from the loop's own thread is a lock-free queue push.
  if (write_armed_ || in_dirty_list_ || flush_posted_) return;
  if (worker_.in_io_scope()) {
    in_dirty_list_ = true;
    worker_.AddDirty(this);
    return;
  }
  {
    flush_posted_ = true;
    asio::post(worker_.io(), [this, state = state_] {
      if (!state->open) return;
      flush_posted_ = false;
      FlushPending();
    });
  }
}

void Connection::Write(std::string_view data) {
  std::string copy(data);
  Write(copy);
}

void Connection::FlushPending() {
  if (write_armed_ || pending_.empty()) return;
  std::error_code ec;
  size_t n = socket_.write_some(asio::buffer(pending_), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    Fail(ec);
    return;
  }
  pending_.erase(0, n);
  if (!pending_.empty()) {
    ArmWrite();
    return;
  }
  if (close_after_flush_) {
    std::shared_ptr<State> state = state_;
    Close();
    if (handler_ != nullptr) handler_->OnClose({});
    return;
  }
  if (handler_ != nullptr) handler_->OnWriteDrained();
}

void Connection::ArmWrite() {
  write_armed_ = true;
  inflight_.swap(pending_);
  asio::async_write(socket_, asio::buffer(inflight_),
                    [this, state = state_](const std::error_code& ec, size_t) {
                      if (!state->open) return;
                      Worker::IoScope scope(worker_);
                      write_armed_ = false;
                      inflight_.clear();
                      if (ec) {
                        Fail(ec);
                        return;
                      }
                      if (!pending_.empty()) {
                        FlushPending();
                      } else if (close_after_flush_) {
                        Close();
                        if (handler_ != nullptr) handler_->OnClose({});
                      } else if (handler_ != nullptr) {
                        handler_->OnWriteDrained();
                      }
                    });
}

void Connection::Close() {
  if (!state_->open) return;
  state_->open = false;
  std::error_code ec;
  socket_.close(ec);
  pending_.clear();
}

void Connection::CloseAfterFlush() {
  reading_ = false;
  if (!state_->open) return;
  close_after_flush_ = true;
  if (!write_armed_ && pending_.empty()) {
    Close();
    if (handler_ != nullptr) handler_->OnClose({});
  }
}

void Connection::Fail(const std::error_code& ec) {
  if (!state_->open) return;
  Close();
  if (handler_ != nullptr) handler_->OnClose(ec);
}

}  // namespace cairn::sidecar
