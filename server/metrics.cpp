// Prometheus text exposition.
#include "server/metrics.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>

namespace eds::server {

void Metrics::Observe(const std::string& interaction, int status, double seconds, std::size_t bytes_in,
                      std::size_t bytes_out) {
  const std::string& name = interaction.empty() ? std::string("none") : interaction;
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{name, status}];
  auto& h = latency_[name];
  for (std::size_t i = 0; i < kBuckets.size(); ++i)
    if (seconds <= kBuckets[i]) ++h.counts[i];
  ++h.count;
  h.sum += seconds;
  bytes_in_ += bytes_in;
  bytes_out_ += bytes_out;
}

void Metrics::InFlight(int delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_ += delta;
}

std::string Metrics::Render(const std::string& extra) const {
  std::string out;
  std::lock_guard<std::mutex> lock(mutex_);
  out += "# HELP eds_http_requests_total Requests answered, by interaction and HTTP status.\n";
  out += "# TYPE eds_http_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("eds_http_requests_total{{interaction=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  out += "# HELP eds_http_request_duration_seconds Time from request read to response ready, by interaction.\n";
  out += "# TYPE eds_http_request_duration_seconds histogram\n";
  for (const auto& [name, h] : latency_) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      out += fmt::format("eds_http_request_duration_seconds_bucket{{interaction=\"{}\",le=\"{}\"}} {}\n", name,
                         kBuckets[i], h.counts[i]);
    out += fmt::format("eds_http_request_duration_seconds_bucket{{interaction=\"{}\",le=\"+Inf\"}} {}\n", name, h.count);
    out += fmt::format("eds_http_request_duration_seconds_sum{{interaction=\"{}\"}} {}\n", name, h.sum);
    out += fmt::format("eds_http_request_duration_seconds_count{{interaction=\"{}\"}} {}\n", name, h.count);
  }
  out += "# HELP eds_http_requests_in_flight Requests being served now.\n# TYPE eds_http_requests_in_flight gauge\n";
  out += fmt::format("eds_http_requests_in_flight {}\n", in_flight_);
  out += "# HELP eds_http_request_bytes_total Request body bytes received.\n# TYPE eds_http_request_bytes_total counter\n";
  out += fmt::format("eds_http_request_bytes_total {}\n", bytes_in_);
  out += "# HELP eds_http_response_bytes_total Response body bytes sent.\n# TYPE eds_http_response_bytes_total counter\n";
  out += fmt::format("eds_http_response_bytes_total {}\n", bytes_out_);
  out += "# HELP eds_process_resident_memory_bytes Resident memory of the server process.\n";
  out += "# TYPE eds_process_resident_memory_bytes gauge\n";
  out += fmt::format("eds_process_resident_memory_bytes {}\n", ResidentBytes());
  out += extra;
  return out;
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace eds::server
