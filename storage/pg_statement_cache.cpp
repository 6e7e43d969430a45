// Per-connection prepared statements named by a hash of their SQL text.
#include "storage/pg_statement_cache.hpp"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace eds::storage {
namespace {

constexpr std::size_t kStatementsPerConnection = 200;

// The statements one connection has prepared, most recently used first.
struct ConnectionStatements {
  int backend_pid = 0;  // a reopened connection (another backend) has none
  PlanMode session_mode = PlanMode::kAuto;  // the session's plan_cache_mode
  std::list<std::string> lru;
  std::unordered_map<std::string, std::list<std::string>::iterator> index;
};

std::mutex registry_mutex;
std::unordered_map<const pqxx::connection_base*, ConnectionStatements> registry;

// FNV-1a, 64 bits: statement names for SQL texts (a collision between two
// texts a server generates is vanishingly unlikely).
std::string NameFor(const std::string& sql) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : sql) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return fmt::format("q{:016x}_{}", h, sql.size());
}

thread_local TransactionPlanMode* current_plan_mode = nullptr;

}  // namespace

TransactionPlanMode::TransactionPlanMode(const pqxx::transaction_base& tx)
    : tx_(&tx), previous_(std::exchange(current_plan_mode, this)) {}
TransactionPlanMode::~TransactionPlanMode() { current_plan_mode = previous_; }

pqxx::result ExecPrepared(pqxx::transaction_base& tx, const std::string& sql, const std::vector<std::string>& params,
                          PlanMode mode) {
  pqxx::connection_base& conn = tx.conn();
  const std::string name = NameFor(sql);
  // outside a transaction block the setting is the session's (and kept
  // track of); inside one it lasts until the transaction ends
  const bool autocommit = dynamic_cast<pqxx::nontransaction*>(&tx) != nullptr;
  std::string evict;
  bool known = false;
  PlanMode session_mode = PlanMode::kAuto;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto& stmts = registry[&conn];
    if (stmts.backend_pid != conn.backendpid()) {
      stmts = ConnectionStatements{};
      stmts.backend_pid = conn.backendpid();
    }
    session_mode = stmts.session_mode;
    if (autocommit) stmts.session_mode = mode;
    if (auto it = stmts.index.find(name); it != stmts.index.end()) {
      stmts.lru.splice(stmts.lru.begin(), stmts.lru, it->second);
      known = true;
    } else {
      if (stmts.lru.size() >= kStatementsPerConnection) {
        evict = stmts.lru.back();
        stmts.index.erase(evict);
        stmts.lru.pop_back();
      }
      stmts.lru.push_front(name);
      stmts.index[name] = stmts.lru.begin();
    }
  }
  // the connection is this caller's alone while leased: preparing needs no lock
  if (!known) {
    if (!evict.empty()) conn.unprepare(evict);
    try {
      conn.prepare(name, sql);
    } catch (const pqxx::usage_error&) {
      // defined by an earlier attempt that the registry has forgotten
    }
  }
  bool set = mode != session_mode;
  TransactionPlanMode* const local =
      !autocommit && current_plan_mode != nullptr && current_plan_mode->tx_ == &tx ? current_plan_mode : nullptr;
  // in a transaction that set the mode already: again only for another
  // mode that matters (kAuto statements run as the transaction's others)
  if (local != nullptr && local->set_) set = mode != PlanMode::kAuto && mode != local->mode_;
  if (set && local != nullptr) {
    local->set_ = true;
    local->mode_ = mode;
  }
  if (set)
    tx.exec(std::string(autocommit ? "SET" : "SET LOCAL") + " plan_cache_mode = " +
            (mode == PlanMode::kGeneric  ? "force_generic_plan"
             : mode == PlanMode::kCustom ? "force_custom_plan"
                                         : "auto"));
  return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(params));
}

}  // namespace eds::storage
