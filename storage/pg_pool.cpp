// Connection pool implementation.
#include "storage/pg_pool.hpp"

#include <pqxx/pqxx>

namespace eds::storage {

PgPool::PgPool(std::string dsn, int size, std::chrono::milliseconds acquire_timeout,
               std::function<void(pqxx::connection&)> prepare)
    : dsn_(std::move(dsn)), acquire_timeout_(acquire_timeout), prepare_(std::move(prepare)) {
  slots_.resize(static_cast<std::size_t>(size < 1 ? 1 : size));
  for (std::size_t i = slots_.size(); i-- > 0;) free_.push_back(i);
}

PgPool::~PgPool() = default;

std::optional<PgPool::Lease> PgPool::Acquire() {
  std::unique_lock lock(mu_);
  const auto t0 = std::chrono::steady_clock::now();
  const bool got = cv_.wait_for(lock, acquire_timeout_, [this] { return !free_.empty(); });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++acquires_;
  if (!got) {
    ++timeouts_;
    return std::nullopt;
  }
  std::size_t slot = free_.back();
  free_.pop_back();
  return Lease(*this, slot);
}

PgPool::Stats PgPool::stats() const {
  std::lock_guard lock(mu_);
  return Stats{size(), size() - static_cast<int>(free_.size()), acquires_, timeouts_, wait_seconds_};
}

void PgPool::Release(std::size_t slot, bool broken) {
  {
    std::lock_guard lock(mu_);
    if (broken) slots_[slot].reset();
    free_.push_back(slot);
  }
  cv_.notify_one();
}

PgPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(slot_, broken_);
}

pqxx::connection& PgPool::Lease::conn() {
  auto& c = pool_->slots_[slot_];
  if (!c || !c->is_open()) {
    c.reset();
    auto fresh = std::make_unique<pqxx::connection>(pool_->dsn_);
    if (pool_->prepare_) pool_->prepare_(*fresh);
    c = std::move(fresh);
  }
  return *c;
}

}  // namespace eds::storage
