// Beast/Asio HTTP layer: accept loop, keep-alive sessions as coroutines, each
// connection on one of the per-thread io_contexts; request limits and
// timeouts; batched non-blocking reads; and the hand-off of other requests to
// the database worker pool (libpqxx blocks, so it never runs on an I/O thread).
#include "server/http_server.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <deque>
#include <optional>
#include <thread>

#include "fhir/result.hpp"
#include "server/fhir_api.hpp"
#include "server/http_types.hpp"
#include "server/log.hpp"
#include "storage/pg_async_reader.hpp"

namespace eds::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// Runs `fn` on `pool` and resumes the calling coroutine on its own executor
// with the result (or the exception `fn` threw).
template <class Fn>
net::awaitable<std::invoke_result_t<Fn>> Offload(net::thread_pool& pool, Fn fn) {
  using R = std::invoke_result_t<Fn>;
  auto initiate = [&pool](auto handler, Fn f) {
    net::post(pool, [handler = std::move(handler), f = std::move(f)]() mutable {
      std::optional<R> result;
      std::exception_ptr error;
      try {
        result.emplace(f());
      } catch (...) {
        error = std::current_exception();
      }
      auto ex = net::get_associated_executor(handler);
      net::dispatch(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
        std::move(handler)(error, std::move(result));
      });
    });
  };
  auto result = co_await net::async_initiate<decltype(net::use_awaitable),
                                             void(std::exception_ptr, std::optional<R>)>(
      initiate, net::use_awaitable, std::move(fn));
  co_return std::move(*result);
}

HttpRequest ToHttpRequest(http::request<http::string_body>&& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  out.headers.reserve(8);
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (auto& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  out.body = std::move(req.body());
  return out;
}

// Reads of current versions, served without worker threads. Each I/O
// thread has its own batcher (so nothing here is shared between threads):
// reads that arrive while the thread handles a burst of events are sent as
// one query, and batches are pipelined on a few non-blocking connections,
// so the database is never idle waiting for this side. Readiness is awaited
// by a 1-byte MSG_PEEK receive (a read operation, so Asio also sees
// readiness that arrived before the wait). When a connection fails, its
// waiting reads get nullopt and fall back to the worker pool.
class ReadBatcher {
 public:
  using Outcome = std::optional<fhir::Result<fhir::VersionRecord>>;

  ReadBatcher(net::io_context& ioc, net::thread_pool& workers, const ServerConfig& config)
      : ioc_(ioc), workers_(workers), dsn_(config.database_url) {
    conns_.resize(static_cast<std::size_t>(config.read_connections));
    for (auto& c : conns_) Open(c);
  }

  ~ReadBatcher() {
    for (auto& c : conns_)
      if (c->socket) c->socket->release();  // libpq closes its own socket
  }

  // Completes with the current version of type/id, or nullopt when it could
  // not be read this way. Call only from this batcher's I/O thread.
  template <class Token>
  auto AsyncRead(std::string type, std::string id, Token&& token) {
    auto init = [this](auto handler, std::string t, std::string i) {
      queue_.push_back(Waiter{{std::move(t), std::move(i)}, Handler(std::move(handler))});
      if (!flush_posted_) {
        flush_posted_ = true;
        net::post(ioc_, [this] { FlushQueue(); });
      }
    };
    return net::async_initiate<Token, void(Outcome)>(init, token, std::move(type), std::move(id));
  }

 private:
  using Handler = net::any_completion_handler<void(Outcome)>;
  static constexpr std::size_t kMaxBatch = 64;

  struct Waiter {
    storage::ResourceKey key;
    Handler handler;
  };
  struct Conn {
    std::unique_ptr<storage::PgAsyncReader> reader;
    std::unique_ptr<net::generic::stream_protocol::socket> socket;
    std::deque<std::vector<Waiter>> in_flight;  // batches sent, oldest first
    bool receiving = false;                     // a Receive loop is running
    bool reopening = false;
  };

  void Complete(Waiter& w, Outcome outcome) {
    net::post(ioc_, [h = std::move(w.handler), o = std::move(outcome)]() mutable { std::move(h)(std::move(o)); });
  }

  // Sends everything queued, in batches, on the least busy connections.
  void FlushQueue() {
    flush_posted_ = false;
    while (!queue_.empty()) {
      Conn* conn = nullptr;
      for (auto& c : conns_)
        if (c->reader && (conn == nullptr || c->in_flight.size() < conn->in_flight.size())) conn = c.get();
      std::vector<Waiter> batch;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (conn == nullptr) {  // every connection is reconnecting
        for (auto& w : batch) Complete(w, std::nullopt);
        continue;
      }
      std::vector<storage::ResourceKey> keys;
      keys.reserve(batch.size());
      for (const auto& w : batch) keys.push_back(w.key);
      conn->in_flight.push_back(std::move(batch));
      if (!conn->reader->Submit(keys)) {
        Fail(*conn);
        continue;
      }
      if (!conn->receiving) {
        conn->receiving = true;
        auto loop = [this, conn]() { return ReceiveLoop(*conn); };
        net::co_spawn(ioc_, loop, net::detached);
      }
    }
  }

  void Deliver(std::vector<Waiter>& batch, storage::BatchResult& result) {
    for (auto& w : batch) {
      if (!result.ok) {
        Complete(w, std::nullopt);
        continue;
      }
      const fhir::VersionRecord* found = nullptr;
      for (const auto& r : result.rows)
        if (r.id == w.key.id && r.type == w.key.type) found = &r;
      if (found != nullptr)
        Complete(w, fhir::Result<fhir::VersionRecord>(*found));
      else
        Complete(w, fhir::Result<fhir::VersionRecord>(fhir::MakeError(
                        fhir::ErrorKind::kNotFound, fmt::format("{}/{} is not known", w.key.type, w.key.id))));
    }
  }

  // Waits for answers while batches are in flight and hands them out.
  net::awaitable<void> ReceiveLoop(Conn& conn) {
    char peek = 0;
    std::vector<storage::BatchResult> done;
    while (!conn.in_flight.empty() && conn.reader) {
      if (conn.reader->WantsWrite()) {
        auto [ec] = co_await conn.socket->async_wait(net::socket_base::wait_write, kTuple);
        if (ec || !conn.reader || !conn.reader->Flush()) break;
        continue;
      }
      auto [ec, n] = co_await conn.socket->async_receive(net::buffer(&peek, 1),
                                                         net::socket_base::message_peek, kTuple);
      if (ec || n == 0 || !conn.reader) break;
      done.clear();
      if (!conn.reader->Receive(done)) break;
      for (auto& result : done) {
        if (!result.ok) Log(LogLevel::kWarn, "batched read failed: " + result.error);
        Deliver(conn.in_flight.front(), result);
        conn.in_flight.pop_front();
      }
    }
    conn.receiving = false;
    if (!conn.in_flight.empty()) Fail(conn);
  }

  // Answers everything in flight with nullopt and reconnects on a worker.
  void Fail(Conn& conn) {
    for (auto& batch : conn.in_flight)
      for (auto& w : batch) Complete(w, std::nullopt);
    conn.in_flight.clear();
    if (conn.reopening) return;
    conn.reopening = true;
    if (conn.socket) conn.socket->release();
    conn.socket.reset();
    conn.reader.reset();
    Reconnect(conn, std::chrono::milliseconds(0));
  }

  // Reconnects on a worker thread after `delay`; while the database stays
  // unreachable, tries again with a growing delay (up to 5 s). Reads use the
  // worker pool meanwhile.
  void Reconnect(Conn& conn, std::chrono::milliseconds delay) {
    auto timer = std::make_shared<net::steady_timer>(ioc_, delay);
    timer->async_wait([this, &conn, timer, delay](const beast::error_code& ec) {
      if (ec) return;  // shutting down
      net::post(workers_, [this, &conn, delay] {
        std::unique_ptr<storage::PgAsyncReader> reader;
        try {
          reader = std::make_unique<storage::PgAsyncReader>(dsn_, std::chrono::milliseconds(30000));
        } catch (const std::exception& e) {
          Log(LogLevel::kDebug, std::string("cannot reopen a read connection yet: ") + e.what());
        }
        // Back on the I/O thread: install it, or try again later.
        net::post(ioc_, [this, &conn, delay, r = std::move(reader)]() mutable {
          if (r) {
            conn.reopening = false;
            Install(conn, std::move(r));
            return;
          }
          auto next = std::min(std::max(delay * 2, std::chrono::milliseconds(100)), std::chrono::milliseconds(5000));
          Reconnect(conn, next);
        });
      });
    });
  }

  void Install(Conn& conn, std::unique_ptr<storage::PgAsyncReader> reader) {
    int family = reader->address_family();
    auto socket = std::make_unique<net::generic::stream_protocol::socket>(ioc_);
    socket->assign(net::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP),
                   reader->socket());
    conn.reader = std::move(reader);
    conn.socket = std::move(socket);
  }

  // Blocking: connects. Called at start-up.
  void Open(std::unique_ptr<Conn>& c) {
    c = std::make_unique<Conn>();
    Install(*c, std::make_unique<storage::PgAsyncReader>(dsn_, std::chrono::milliseconds(30000)));
  }

  net::io_context& ioc_;
  net::thread_pool& workers_;
  std::string dsn_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::deque<Waiter> queue_;
  bool flush_posted_ = false;
};

}  // namespace

struct HttpServer::Impl {
  Impl(const ServerConfig& c, const FhirApi& a)
      : config(c), api(a), db_pool(static_cast<std::size_t>(c.pool_size)) {
    for (int i = 0; i < c.io_threads; ++i) {
      // One thread runs each context: no locking inside, no cross-thread wake-ups.
      auto ctx = std::make_unique<net::io_context>(1);
      guards.push_back(net::make_work_guard(*ctx));
      if (c.read_connections > 0) batchers.push_back(std::make_unique<ReadBatcher>(*ctx, db_pool, c));
      contexts.push_back(std::move(ctx));
    }
    acceptor_ = std::make_unique<tcp::acceptor>(main_ctx());
  }

  const ServerConfig& config;
  const FhirApi& api;
  // One io_context per I/O thread; a connection lives on one of them for its
  // whole life, with the read batcher of that context.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::vector<std::unique_ptr<ReadBatcher>> batchers;
  net::thread_pool db_pool;
  net::io_context& main_ctx() { return *contexts.front(); }
  tcp::acceptor& acceptor() { return *acceptor_; }
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::size_t next_context = 0;
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};

  // Serves one request: cheap ones inline, plain reads on a non-blocking
  // connection when one is free, everything else on a worker thread.
  net::awaitable<HttpResponse> Serve(const HttpRequest& hreq, RequestContext& ctx, ReadBatcher* reads) {
    if (api.IsCheap(hreq)) co_return api.Handle(hreq, ctx);
    if (reads) {
      if (auto plan = api.PlanRead(hreq, ctx)) {
        auto result = co_await reads->AsyncRead(plan->type, plan->id, net::use_awaitable);
        if (result) co_return api.CompleteRead(hreq, *plan, std::move(*result), ctx);
      }
    }
    auto work = [this, &hreq, &ctx] { return api.Handle(hreq, ctx); };
    co_return co_await Offload(db_pool, std::move(work));
  }

  // Sends `r`; its body is lent to the writer and given back afterwards.
  net::awaitable<void> WriteResponse(beast::tcp_stream& stream, HttpResponse& r, unsigned version,
                                     bool keep_alive, bool& ok) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.set(http::field::server, "EDS-core");
    res.keep_alive(keep_alive);
    if (r.status != 204 && r.status != 304) {
      res.body() = std::move(r.body);
      res.prepare_payload();
    }
    stream.expires_after(config.read_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, kTuple);
    ok = !ec;
    if (r.status != 204 && r.status != 304) r.body = std::move(res.body());
  }

  // Answers a request that could not be read whole, then the connection closes.
  net::awaitable<void> Refuse(beast::tcp_stream& stream, fhir::ErrorKind kind, std::string message) {
    RequestContext ctx;
    ctx.request_id = MakeRequestId({});
    bool ok = false;
    HttpResponse r = api.Reject(kind, std::move(message), ctx);
    co_await WriteResponse(stream, r, 11, false, ok);
  }

  net::awaitable<void> Session(tcp::socket socket, ReadBatcher* reads) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool first = true;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(config.header_limit));
      parser.body_limit(config.body_limit);
      stream.expires_after(first ? config.read_timeout : config.idle_timeout);
      first = false;
      auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      if (ec == http::error::end_of_stream) break;
      if (ec == beast::error::timeout || ec == net::error::connection_reset || ec == net::error::eof)
        co_return;
      if (ec == http::error::header_limit) {
        co_await Refuse(stream, fhir::ErrorKind::kInvalid,
                        fmt::format("request headers exceed {} bytes", config.header_limit));
        break;
      }
      if (ec == http::error::body_limit) {
        co_await Refuse(stream, fhir::ErrorKind::kPayloadTooLarge,
                        fmt::format("request body exceeds the limit of {} bytes", config.body_limit));
        break;
      }
      if (ec) {
        co_await Refuse(stream, fhir::ErrorKind::kInvalid, "malformed HTTP request: " + ec.message());
        break;
      }
      stream.expires_after(config.read_timeout);
      if (!parser.is_done()) {
        auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
          auto [wec, wn] = co_await http::async_write(stream, cont, kTuple);
          if (wec) co_return;
        }
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kTuple);
        if (bec == http::error::body_limit) {
          co_await Refuse(stream, fhir::ErrorKind::kPayloadTooLarge,
                          fmt::format("request body exceeds the limit of {} bytes", config.body_limit));
          break;
        }
        if (bec == beast::error::timeout || bec == net::error::connection_reset ||
            bec == net::error::eof || bec == http::error::partial_message)
          co_return;
        if (bec) {
          co_await Refuse(stream, fhir::ErrorKind::kInvalid, "malformed HTTP request body: " + bec.message());
          break;
        }
      }
      auto req = parser.release();
      const unsigned version = req.version();
      const bool keep_alive = req.keep_alive();
      HttpRequest hreq = ToHttpRequest(std::move(req));
      RequestContext ctx;
      ctx.request_id = MakeRequestId(hreq.Header("x-request-id"));

      ++in_flight;
      api.InFlight(1);
      HttpResponse resp = co_await Serve(hreq, ctx, reads);
      api.Count(hreq, resp, ctx);
      bool ok = false;
      bool again = keep_alive && !stopping.load();
      co_await WriteResponse(stream, resp, version, again, ok);
      // audited once the answer is on its way: the audit's work is not in
      // the time the client waits
      api.Observe(hreq, resp, ctx);
      api.InFlight(-1);
      --in_flight;
      if (!ok) co_return;
      if (!again) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  net::awaitable<void> Accept() {
    for (;;) {
      const std::size_t target = next_context++ % contexts.size();
      auto [ec, socket] = co_await acceptor().async_accept(contexts[target]->get_executor(), kTuple);
      if (ec) {
        if (!acceptor().is_open() || ec == net::error::operation_aborted) co_return;
        Log(LogLevel::kWarn, "accept failed: " + ec.message());
        net::steady_timer pause(main_ctx(), std::chrono::milliseconds(50));  // e.g. out of descriptors
        co_await pause.async_wait(kTuple);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto executor = socket.get_executor();
      auto on_done = [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          Log(LogLevel::kDebug, std::string("session ended: ") + x.what());
        }
      };
      ReadBatcher* reads = batchers.empty() ? nullptr : batchers[target].get();
      net::co_spawn(executor, Session(std::move(socket), reads), on_done);
    }
  }

  void BeginShutdown() {
    if (stopping.exchange(true)) return;
    Log(LogLevel::kInfo, "shutting down: no new connections, finishing requests in flight");
    beast::error_code ignored;
    acceptor().close(ignored);
    auto deadline = std::chrono::steady_clock::now() + config.shutdown_grace;
    auto drain = [this, deadline]() -> net::awaitable<void> {
      net::steady_timer t(main_ctx());
      while (in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(20));
        co_await t.async_wait(kTuple);
      }
      for (auto& c : contexts) c->stop();
    };
    net::co_spawn(main_ctx(), drain, net::detached);
  }
};

HttpServer::HttpServer(const ServerConfig& config, const FhirApi& api)
    : impl_(std::make_unique<Impl>(config, api)) {}

HttpServer::~HttpServer() {
  impl_->db_pool.join();
  impl_->batchers.clear();
}

unsigned short HttpServer::Listen() {
  auto& a = impl_->acceptor();
  tcp::endpoint ep(net::ip::make_address(impl_->config.bind_address), impl_->config.port);
  a.open(ep.protocol());
  a.set_option(net::socket_base::reuse_address(true));
  a.bind(ep);
  a.listen(net::socket_base::max_listen_connections);
  return a.local_endpoint().port();
}

void HttpServer::Run() {
  auto& s = *impl_;
  net::signal_set signals(s.main_ctx(), SIGINT, SIGTERM);
  signals.async_wait([&s](const beast::error_code& ec, int) {
    if (!ec) s.BeginShutdown();
  });
  auto accept = [&s]() { return s.Accept(); };
  net::co_spawn(s.main_ctx(), accept, net::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < s.contexts.size(); ++i)
    threads.emplace_back([&s, i] { s.contexts[i]->run(); });
  s.main_ctx().run();
  for (auto& t : threads) t.join();
  s.db_pool.join();
}

void HttpServer::Stop() {
  net::post(impl_->main_ctx(), [this] { impl_->BeginShutdown(); });
}

}  // namespace eds::server
