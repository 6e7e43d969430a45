// Operator metrics in the Prometheus text format: requests by interaction
// and status, latency histograms by interaction, requests in flight, and
// whatever the store and the process report.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace eds::server {

class Metrics {
 public:
  // One finished request.
  void Observe(const std::string& interaction, int status, double seconds, std::size_t bytes_in,
               std::size_t bytes_out);
  void InFlight(int delta);

  // The exposition text (metrics of this process; `extra` appended as is).
  std::string Render(const std::string& extra) const;

  // Upper bounds of the latency buckets, in seconds.
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,  0.025, 0.05,
                                                      0.1,    0.25,  0.5,    1.0,   2.5,   5.0,   10.0};

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  int in_flight_ = 0;
};

// Resident memory of this process in bytes (0 when unknown).
uint64_t ResidentBytes();

}  // namespace eds::server
