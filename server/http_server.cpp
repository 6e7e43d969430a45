// Beast/Asio HTTP layer: accept loop, keep-alive sessions as coroutines on
// their own strands, request limits and timeouts, and the hand-off of each
// request to the database worker pool (libpqxx blocks, so database work never
// runs on an I/O thread).
#include "server/http_server.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <optional>
#include <thread>

#include "fhir/result.hpp"
#include "server/fhir_api.hpp"
#include "server/http_types.hpp"
#include "server/log.hpp"

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

}  // namespace

struct HttpServer::Impl {
  Impl(const ServerConfig& c, const FhirApi& a)
      : config(c), api(a), ioc(c.io_threads), db_pool(static_cast<std::size_t>(c.pool_size)) {}

  const ServerConfig& config;
  const FhirApi& api;
  net::io_context ioc;
  net::thread_pool db_pool;
  tcp::acceptor acceptor{ioc};
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};

  net::awaitable<void> WriteResponse(beast::tcp_stream& stream, HttpResponse&& r, unsigned version,
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
  }

  // Answers a request that could not be read whole, then the connection closes.
  net::awaitable<void> Refuse(beast::tcp_stream& stream, fhir::ErrorKind kind, std::string message) {
    RequestContext ctx;
    ctx.request_id = MakeRequestId({});
    bool ok = false;
    co_await WriteResponse(stream, api.Reject(kind, std::move(message), ctx), 11, false, ok);
  }

  net::awaitable<void> Session(tcp::socket socket) {
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
      HttpResponse resp;
      if (api.IsCheap(hreq)) {
        resp = api.Handle(hreq, ctx);
      } else {
        auto work = [this, &hreq, &ctx] { return api.Handle(hreq, ctx); };
        resp = co_await Offload(db_pool, std::move(work));
      }
      if (LogEnabled(LogLevel::kInfo)) {
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ctx.start);
        Log(LogLevel::kInfo, fmt::format("{} {} {} {} {:.1f}ms", ctx.request_id, hreq.method, hreq.target,
                                         resp.status, ms.count()));
      }
      bool ok = false;
      bool again = keep_alive && !stopping.load();
      co_await WriteResponse(stream, std::move(resp), version, again, ok);
      --in_flight;
      if (!ok) co_return;
      if (!again) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  net::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(net::make_strand(ioc), kTuple);
      if (ec) {
        if (!acceptor.is_open() || ec == net::error::operation_aborted) co_return;
        Log(LogLevel::kWarn, "accept failed: " + ec.message());
        net::steady_timer pause(ioc, std::chrono::milliseconds(50));  // e.g. out of descriptors
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
      net::co_spawn(executor, Session(std::move(socket)), on_done);
    }
  }

  void BeginShutdown() {
    if (stopping.exchange(true)) return;
    Log(LogLevel::kInfo, "shutting down: no new connections, finishing requests in flight");
    beast::error_code ignored;
    acceptor.close(ignored);
    auto deadline = std::chrono::steady_clock::now() + config.shutdown_grace;
    auto drain = [this, deadline]() -> net::awaitable<void> {
      net::steady_timer t(ioc);
      while (in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(20));
        co_await t.async_wait(kTuple);
      }
      ioc.stop();
    };
    net::co_spawn(ioc, drain, net::detached);
  }
};

HttpServer::HttpServer(const ServerConfig& config, const FhirApi& api)
    : impl_(std::make_unique<Impl>(config, api)) {}

HttpServer::~HttpServer() {
  impl_->db_pool.join();
}

unsigned short HttpServer::Listen() {
  auto& a = impl_->acceptor;
  tcp::endpoint ep(net::ip::make_address(impl_->config.bind_address), impl_->config.port);
  a.open(ep.protocol());
  a.set_option(net::socket_base::reuse_address(true));
  a.bind(ep);
  a.listen(net::socket_base::max_listen_connections);
  return a.local_endpoint().port();
}

void HttpServer::Run() {
  auto& s = *impl_;
  net::signal_set signals(s.ioc, SIGINT, SIGTERM);
  signals.async_wait([&s](const beast::error_code& ec, int) {
    if (!ec) s.BeginShutdown();
  });
  auto accept = [&s]() { return s.Accept(); };
  net::co_spawn(s.ioc, accept, net::detached);
  std::vector<std::thread> threads;
  for (int i = 1; i < s.config.io_threads; ++i) threads.emplace_back([&s] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
  s.db_pool.join();
}

void HttpServer::Stop() {
  net::post(impl_->ioc, [this] { impl_->BeginShutdown(); });
}

}  // namespace eds::server
