// Hostile and unusual traffic: size limits, slow and idle connections,
// clients that leave mid-request, and graceful shutdown.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace eds::testing;

namespace {

int RawConnect(unsigned short port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// True when the peer closed the connection within `wait`.
bool ClosedWithin(int fd, std::chrono::seconds wait) {
  timeval tv{static_cast<long>(wait.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

}  // namespace

TEST_CASE("request size limits answer with OperationOutcomes", "[limits]") {
  ServerProcess server(TestDsn(), {"--body-limit", "4096"});
  HttpClient c(server.port());
  std::string big = "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"" + std::string(8000, 'x') + "\"}]}";
  auto r = c.Post("/fhir/Patient", big);
  CHECK(r.status == 413);
  CHECK(r.Json()["issue"][0]["code"] == "too-long");

  HttpClient c2(server.port());
  auto longurl = c2.Get("/fhir/Patient/" + std::string(9000, 'a'));
  CHECK(longurl.status == 414);

  HttpClient c3(server.port());
  auto hdr = c3.Send("GET", "/fhir/metadata", {{"X-Big", std::string(70000, 'h')}});
  CHECK(hdr.status == 400);

  HttpClient c4(server.port());
  auto garbage = c4.SendRaw("THIS IS NOT HTTP\r\n\r\n");
  CHECK(garbage.status == 400);

  HttpClient ok(server.port());
  CHECK(ok.Get("/fhir/metadata").status == 200);
}

TEST_CASE("Expect: 100-continue is honoured", "[limits]") {
  HttpClient c(SharedServer().port());
  std::string body = "{\"resourceType\":\"Patient\",\"gender\":\"other\"}";
  auto r = c.Send("POST", "/fhir/Patient",
                  {{"Content-Type", "application/fhir+json"}, {"Expect", "100-continue"}}, body);
  CHECK(r.status == 201);
}

TEST_CASE("hundreds of idle and slow connections do not starve a normal request", "[limits]") {
  ServerProcess server(TestDsn(), {"--read-timeout", "2", "--idle-timeout", "2"});
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) fds.push_back(RawConnect(server.port()));  // idle
  for (int i = 0; i < 100; ++i) {
    int fd = RawConnect(server.port());
    std::string partial = "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);  // and never finish
    fds.push_back(fd);
  }
  auto t0 = std::chrono::steady_clock::now();
  HttpClient c(server.port());
  CHECK(c.Get("/fhir/metadata").status == 200);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));

  // the read timeout closes the slow ones, the idle timeout the idle ones
  CHECK(ClosedWithin(fds.back(), std::chrono::seconds(5)));
  CHECK(ClosedWithin(fds.front(), std::chrono::seconds(5)));
  for (int fd : fds) ::close(fd);
  HttpClient after(server.port());
  CHECK(after.Get("/fhir/metadata").status == 200);
}

TEST_CASE("a client that leaves mid-request costs nothing", "[limits]") {
  ServerProcess server(TestDsn());
  for (int i = 0; i < 50; ++i) {
    int fd = RawConnect(server.port());
    std::string req =
        "PUT /fhir/Patient/gone-" + std::to_string(i) +
        " HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 500\r\n\r\n{\"resourceType\"";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  for (int i = 0; i < 50; ++i) {  // complete requests whose client does not wait for the answer
    int fd = RawConnect(server.port());
    std::string req = "GET /fhir/_history?_count=100 HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  HttpClient c(server.port());
  CHECK(c.Get("/fhir/metadata").status == 200);
  CHECK(c.Get("/fhir/Patient/gone-1").status == 404);  // nothing half-written
  CHECK(server.Running());
}

TEST_CASE("SIGTERM stops the server cleanly", "[limits]") {
  ServerProcess server(TestDsn());
  HttpClient c(server.port());
  CHECK(c.Get("/fhir/metadata").status == 200);
  CHECK(server.Stop() == 0);
}
