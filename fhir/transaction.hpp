// Transaction and batch Bundles: reading each entry's request and resource
// (conditional entries and PATCH included), assigning ids to created
// resources, the processing order the spec prescribes, and the rules that
// need every target known: distinct targets and references between entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fhir/json.hpp"
#include "fhir/result.hpp"

namespace eds::fhir {

class Definitions;

enum class EntryMethod { kGet, kPost, kPut, kDelete, kPatch };
const char* EntryMethodCode(EntryMethod m);

struct TransactionEntry {
  std::size_t index = 0;  // position in the Bundle
  EntryMethod method = EntryMethod::kGet;
  std::string full_url;
  std::string url;   // request.url as sent
  std::string type;  // target resource type
  // Target id: from request.url; a new one for POST; empty for conditional
  // PUT, DELETE and PATCH until their criteria are resolved.
  std::string id;
  // Conditional entries: the decoded search that picks the target
  // (request.ifNoneExist for POST, the query of request.url for PUT, DELETE
  // and PATCH).
  std::optional<std::vector<std::pair<std::string, std::string>>> criteria;
  std::optional<int64_t> if_match;
  std::optional<Resource> resource;        // POST, PUT
  std::optional<Resource> fhirpath_patch;  // PATCH with a Parameters resource
  std::optional<std::string> json_patch;   // PATCH with a Binary holding a JSON Patch
  std::optional<Error> error;              // this entry cannot be processed (batch: its own response)
  // GET and HEAD: request.url relative to the base (path and query), to be
  // routed like a request (read, vread, history, search); type and id are
  // set only for Type/id. `head`: answered without the resource.
  std::string read_url;
  bool head = false;

  bool conditional() const { return criteria.has_value(); }
  // A deep copy (execution may have to start over from the plan).
  TransactionEntry Clone() const;
};

struct TransactionPlan {
  bool batch = false;
  std::vector<TransactionEntry> entries;  // Bundle order
  std::vector<std::size_t> order;         // processing order: DELETE, POST, PUT and PATCH, GET
};

// Reads a Bundle of type transaction or batch (its structure already
// checked). For a transaction, any entry error fails the whole (returned as
// the error, naming Bundle.entry[i]), as do two entries with one fullUrl or
// two entries writing the same resource by id (400, naming both); POST
// entries get new ids. For a batch, entry errors stay on their entries.
// References are not rewritten here (RewriteEntryReferences does that once
// conditional entries are resolved). GET and HEAD entries keep their URL
// (read_url) for the caller to route: any read, vread, history or search.
Result<TransactionPlan> PlanTransaction(const Resource& bundle, const Definitions& defs);

// kInvalid naming both entries when two entries that write (every method
// but GET) have the same type and id; entries without an id yet (an
// unresolved conditional entry, or one that matched nothing) are skipped.
std::optional<Error> CheckDistinctTargets(const std::vector<TransactionEntry>& entries);

// Rewrites the references in every entry's resource and FHIRPath Patch:
// another entry's fullUrl (in its urn:uuid:, urn:oid: or absolute form, and
// an absolute RESTful fullUrl also by its relative form) becomes Type/id of
// what that entry writes, and a reference that is a key of `resolved` (a
// conditional reference) becomes its value. Search parameter values of GET
// entries (Observation?subject=urn:uuid:...) that name another entry's
// fullUrl are rewritten the same way, each comma-separated value on its own,
// and a GET entry whose URL is another entry's fullUrl reads that entry's
// Type/id.
void RewriteEntryReferences(std::vector<TransactionEntry>& entries,
                            const std::map<std::string, std::string>& resolved);

// The conditional references ("Patient?identifier=a|b": a known resource
// type, '?', criteria) in the entry's resource and FHIRPath Patch, each once.
std::vector<std::string> ConditionalReferences(const TransactionEntry& entry, const Definitions& defs);

}  // namespace eds::fhir
