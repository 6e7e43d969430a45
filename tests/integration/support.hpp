// Integration-test support: the throwaway database of the CTest fixture, eds
// server processes, and a small blocking HTTP/1.1 client over loopback.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

namespace eds::testing {

// DSN of the fixture's PostgreSQL (file named by EDS_TEST_DSN_FILE). Fails
// the test when the fixture did not run.
std::string TestDsn();

// The same server with another database name.
std::string DsnWithDatabase(const std::string& dsn, const std::string& db);

// Runs SQL on `dsn` (a test's own set-up and checks); returns rows as text.
std::vector<std::vector<std::string>> Sql(const std::string& dsn, const std::string& sql,
                                          const std::vector<std::string>& params = {});

// Creates an empty database and returns its DSN.
std::string CreateDatabase(const std::string& name);

// A free TCP port on 127.0.0.1.
unsigned short FreePort();

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& lower) const;
  rapidjson::Document Json() const;  // parses body; fails the test if it is not JSON
};

// One keep-alive HTTP/1.1 connection to 127.0.0.1:port.
class HttpClient {
 public:
  explicit HttpClient(unsigned short port);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;

  Reply Send(const std::string& method, const std::string& target,
             const std::vector<std::pair<std::string, std::string>>& headers = {},
             const std::string& body = {});
  Reply Get(const std::string& target) { return Send("GET", target); }
  Reply Put(const std::string& target, const std::string& body,
            std::vector<std::pair<std::string, std::string>> headers = {});
  Reply Post(const std::string& target, const std::string& body,
             std::vector<std::pair<std::string, std::string>> headers = {});

  // Sends raw bytes and reads one response (for malformed-request tests).
  Reply SendRaw(const std::string& bytes);
  bool IsOpen() const { return fd_ >= 0; }

 private:
  void Connect();
  Reply ReadReply(bool head);
  unsigned short port_;
  int fd_ = -1;
  std::string buffer_;
};

// An `eds serve` child process on a free port; stopped (SIGTERM) on destruction.
class ServerProcess {
 public:
  ServerProcess(const std::string& dsn, std::vector<std::string> extra_args = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;

  unsigned short port() const { return port_; }
  std::string base() const { return "/fhir"; }
  // Sends SIGTERM and waits; returns the exit status (or -1 if killed).
  int Stop();
  // Sends SIGKILL (no shutdown work at all) and waits for the process.
  void Kill();
  bool Running();

 private:
  int pid_ = -1;
  unsigned short port_ = 0;
};

// One server per test process, on the fixture database, migrated.
ServerProcess& SharedServer();

// Starts `args` (args[0] is the program path) as a child process; returns its pid.
int Spawn(std::vector<std::string> args);
// Waits for a child; returns its exit status, or -1 when a signal ended it.
int WaitExit(int pid);

// Runs `sql` until it returns at least `n` rows (rows written in the
// background, such as batched audit rows), for up to 10 s; the last result.
std::vector<std::vector<std::string>> WaitRows(const std::string& dsn, const std::string& sql, std::size_t n);

// Path of the eds binary (EDS_BIN).
std::string EdsBinary();

// A unique id prefix for this test process, so tests never collide.
std::string UniquePrefix();

}  // namespace eds::testing
