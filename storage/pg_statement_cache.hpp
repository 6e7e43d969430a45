// Prepared statements for generated SQL (storage-internal). A search's SQL
// text depends only on the shape of the query (its values are parameters),
// so each connection prepares the shapes it runs and PostgreSQL can reuse a
// plan instead of planning every request, which costs more than running
// these index lookups. Each connection keeps its most recently used
// statements only.
#pragma once

#include <pqxx/transaction_base>

#include <string>
#include <vector>

namespace eds::storage {

// How PostgreSQL plans a statement: kAuto lets it choose between a plan for
// the values at hand and a reusable generic one (its default); kGeneric
// always reuses the generic plan, for statements whose best plan does not
// depend on the values (one criterion: its values change how many rows
// match, not the way to find them); kCustom always plans for the values at
// hand, for statements whose best plan does (several criteria: which one to
// start from depends on how many rows each value matches, which a generic
// plan cannot know and PostgreSQL's own choice misjudges).
enum class PlanMode { kAuto, kGeneric, kCustom };

// The plan_cache_mode a transaction set with SET LOCAL, kept while the
// object lives: statements ExecPrepared runs in `tx` on this thread then
// set it once per transaction rather than once per statement. Create it
// right after the transaction begins and let it go when the transaction
// ends (a later transaction must not take the setting for its own).
class TransactionPlanMode {
 public:
  explicit TransactionPlanMode(const pqxx::transaction_base& tx);
  ~TransactionPlanMode();
  TransactionPlanMode(const TransactionPlanMode&) = delete;
  TransactionPlanMode& operator=(const TransactionPlanMode&) = delete;

 private:
  friend pqxx::result ExecPrepared(pqxx::transaction_base&, const std::string&, const std::vector<std::string>&,
                                   PlanMode);
  const pqxx::transaction_base* tx_;
  bool set_ = false;  // SET LOCAL was sent, with mode_
  PlanMode mode_ = PlanMode::kAuto;
  TransactionPlanMode* previous_;
};

// Runs `sql` with `params` as a prepared statement of the transaction's
// connection (prepared on first use), planned as `mode` says.
pqxx::result ExecPrepared(pqxx::transaction_base& tx, const std::string& sql, const std::vector<std::string>& params,
                          PlanMode mode = PlanMode::kAuto);

}  // namespace eds::storage
