// The HTTP listener and sessions (Boost.Beast over Asio coroutines). Reads
// requests within limits and timeouts, hands each to the FhirApi on a
// database worker thread, and writes the response.
#pragma once

#include <functional>
#include <memory>

#include "server/config.hpp"

namespace eds::server {

class FhirApi;

class HttpServer {
 public:
  HttpServer(const ServerConfig& config, const FhirApi& api);
  ~HttpServer();

  // Binds and listens; throws std::system_error when the address is taken.
  // Returns the bound port (useful with port 0).
  unsigned short Listen();

  // Serves until SIGINT/SIGTERM (or Stop()), then stops accepting, lets
  // requests in flight finish within the grace period, and returns.
  void Run();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eds::server
