// Integration-test support implementation (POSIX sockets and processes).
#include "support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

namespace eds::testing {

std::string TestDsn() {
  const char* file = std::getenv("EDS_TEST_DSN_FILE");
  if (file == nullptr) FAIL("EDS_TEST_DSN_FILE is not set: run the tests through ctest (the PostgreSQL fixture)");
  std::ifstream in(file);
  std::string dsn;
  std::getline(in, dsn);
  if (dsn.empty()) FAIL("no DSN in " << file << ": the PostgreSQL fixture did not start");
  return dsn;
}

std::string DsnWithDatabase(const std::string& dsn, const std::string& db) {
  auto slash = dsn.rfind('/');
  return dsn.substr(0, slash + 1) + db;
}

std::vector<std::vector<std::string>> Sql(const std::string& dsn, const std::string& sql,
                                          const std::vector<std::string>& params) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  auto r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : r) {
    std::vector<std::string> out;
    for (const auto& f : row) out.emplace_back(f.is_null() ? "" : f.c_str());
    rows.push_back(std::move(out));
  }
  return rows;
}

std::string CreateDatabase(const std::string& name) {
  std::string dsn = TestDsn();
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name) + " WITH (FORCE)");
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
  return DsnWithDatabase(dsn, name);
}

unsigned short FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string Reply::Header(const std::string& lower) const {
  auto it = headers.find(lower);
  return it == headers.end() ? std::string() : it->second;
}

rapidjson::Document Reply::Json() const {
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (d.HasParseError()) FAIL("response body is not JSON (status " << status << "): " << body.substr(0, 300));
  return d;
}

HttpClient::HttpClient(unsigned short port) : port_(port) { Connect(); }
HttpClient::~HttpClient() {
  if (fd_ >= 0) ::close(fd_);
}

void HttpClient::Connect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port_);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port_));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{30, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  buffer_.clear();
}

Reply HttpClient::Put(const std::string& target, const std::string& body,
                      std::vector<std::pair<std::string, std::string>> headers) {
  headers.emplace_back("Content-Type", "application/fhir+json");
  return Send("PUT", target, headers, body);
}

Reply HttpClient::Post(const std::string& target, const std::string& body,
                       std::vector<std::pair<std::string, std::string>> headers) {
  headers.emplace_back("Content-Type", "application/fhir+json");
  return Send("POST", target, headers, body);
}

Reply HttpClient::Send(const std::string& method, const std::string& target,
                       const std::vector<std::pair<std::string, std::string>>& headers,
                       const std::string& body) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  if (fd_ < 0) Connect();
  return SendRaw(req);
}

Reply HttpClient::SendRaw(const std::string& bytes) {
  if (fd_ < 0) Connect();
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close early (e.g. 413)
    sent += static_cast<std::size_t>(n);
  }
  return ReadReply(bytes.rfind("HEAD ", 0) == 0);
}

Reply HttpClient::ReadReply(bool head) {
  auto fill = [this]() {
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  };
  Reply r;
  for (;;) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) {
        ::close(fd_);
        fd_ = -1;
        r.status = 0;  // connection closed without a response
        return r;
      }
    std::string head_text = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    r = Reply{};
    r.status = std::stoi(status_line.substr(9, 3));
    std::size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (pos < head_text.size()) {
      std::size_t e = head_text.find("\r\n", pos);
      if (e == std::string::npos) e = head_text.size();
      std::string line = head_text.substr(pos, e - pos);
      auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
      pos = e + 2;
    }
    if (r.status == 100) continue;  // interim response
    break;
  }
  std::size_t len = 0;
  if (!r.Header("content-length").empty()) len = std::stoul(r.Header("content-length"));
  if (head || r.status == 204 || r.status == 304) len = 0;
  while (buffer_.size() < len)
    if (!fill()) break;
  r.body = buffer_.substr(0, len);
  buffer_.erase(0, std::min(len, buffer_.size()));
  if (r.Header("connection") == "close") {
    ::close(fd_);
    fd_ = -1;
  }
  return r;
}

std::string EdsBinary() {
  const char* bin = std::getenv("EDS_BIN");
  if (bin == nullptr) FAIL("EDS_BIN is not set: run the tests through ctest");
  return bin;
}

int Spawn(std::vector<std::string> args) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // a test that aborts (a failed REQUIRE outside a section, a sanitizer
    // report) takes its servers with it instead of leaving ctest waiting on
    // their output pipe
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int WaitExit(int pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

ServerProcess::ServerProcess(const std::string& dsn, std::vector<std::string> extra_args) {
  port_ = FreePort();
  std::vector<std::string> args = {EdsBinary(), "serve", "--database-url", dsn, "--port",
                                   std::to_string(port_), "--log-level", "warn"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_ = Spawn(std::move(args));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) FAIL("eds serve exited during start-up");
    try {
      HttpClient c(port_);
      if (c.Get("/fhir/metadata").status == 200) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("eds serve did not answer within 30 s");
}

bool ServerProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = WaitExit(pid_);
  pid_ = -1;
  return status;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  WaitExit(pid_);
  pid_ = -1;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop();
}

ServerProcess& SharedServer() {
  static ServerProcess server(TestDsn(), {"--migrate"});
  return server;
}

std::vector<std::vector<std::string>> WaitRows(const std::string& dsn, const std::string& sql, std::size_t n) {
  std::vector<std::vector<std::string>> rows;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    rows = Sql(dsn, sql);
    if (rows.size() >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return rows;
}

std::string UniquePrefix() {
  static const std::string prefix = [] {
    std::mt19937_64 rng{std::random_device{}()};
    return "t" + std::to_string(rng() % 100000000);
  }();
  return prefix;
}

}  // namespace eds::testing
