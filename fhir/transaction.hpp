// Transaction and batch Bundles: reading each entry's request and resource,
// assigning ids to created resources, rewriting the references between
// entries, and the processing order the spec prescribes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fhir/json.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {

class Definitions;

enum class EntryMethod { kGet, kPost, kPut, kDelete };
const char* EntryMethodCode(EntryMethod m);

struct TransactionEntry {
  std::size_t index = 0;  // position in the Bundle
  EntryMethod method = EntryMethod::kGet;
  std::string full_url;
  std::string url;   // request.url as sent
  std::string type;  // target resource type
  std::string id;    // target id; assigned here for POST
  std::optional<int64_t> if_match;
  std::optional<Resource> resource;  // POST, PUT
  std::optional<Error> error;        // this entry cannot be processed (batch: its own response)
};

struct TransactionPlan {
  bool batch = false;
  std::vector<TransactionEntry> entries;  // Bundle order
  std::vector<std::size_t> order;         // processing order: DELETE, POST, PUT, GET
};

// Reads a Bundle of type transaction or batch (its structure already
// checked). For a transaction, any entry error fails the whole (returned as
// the error, naming Bundle.entry[i]); POST entries get new ids, references
// to the fullUrl of another entry are rewritten to Type/id in every
// resource, and two entries writing the same resource are rejected (400,
// naming both). For a batch, entry errors stay on their entries.
// Unsupported here: conditional operations and searches (kNotSupported).
Result<TransactionPlan> PlanTransaction(const Resource& bundle, const Definitions& defs);

}  // namespace eds::fhir
