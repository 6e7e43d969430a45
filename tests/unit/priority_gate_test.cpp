// The document API's admission gate: HIGH before NULL before LOW.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "server/document_api.hpp"

namespace eds::server {
namespace {

using P = PriorityGate::Priority;

void WaitUntil(PriorityGate& gate, P p, int n) {
  for (int i = 0; i < 5000 && gate.Waiting(p) < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(gate.Waiting(p) == n);
}

TEST_CASE("the priority gate admits HIGH, then NULL, then LOW", "[server]") {
  PriorityGate gate(1);
  std::mutex m;
  std::vector<int> order;
  std::vector<std::thread> threads;
  {
    auto held = gate.Acquire(P::kNormal);
    auto start = [&](P p, int tag) {
      threads.emplace_back([&, p, tag] {
        auto slot = gate.Acquire(p);
        std::lock_guard<std::mutex> lock(m);
        order.push_back(tag);
      });
      WaitUntil(gate, p, 1);
    };
    start(P::kLow, 3);      // queued first
    start(P::kNormal, 2);
    start(P::kHigh, 1);     // queued last, admitted first
  }  // the held slot is released here
  for (auto& t : threads) t.join();
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("the priority gate admits up to its capacity at once", "[server]") {
  PriorityGate gate(2);
  auto a = gate.Acquire(P::kLow);
  auto b = gate.Acquire(P::kLow);
  bool admitted = false;
  std::thread t([&] {
    auto c = gate.Acquire(P::kHigh);
    admitted = true;
  });
  WaitUntil(gate, P::kHigh, 1);
  CHECK_FALSE(admitted);
  { auto release = std::move(a); }
  t.join();
  CHECK(admitted);
}

}  // namespace
}  // namespace eds::server
