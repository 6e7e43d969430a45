// Transaction/batch Bundle planning.
#include "fhir/transaction.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "fhir/definitions.hpp"
#include "fhir/json_internal.hpp"
#include "fhir/primitives.hpp"
#include "fhir/search_query.hpp"

namespace eds::fhir {
namespace {

const JsonValue* Member(const JsonValue& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string Text(const JsonValue* v) { return v != nullptr && IsString(*v) ? std::string(StringOf(*v)) : ""; }

int Rank(EntryMethod m) {
  switch (m) {
    case EntryMethod::kDelete: return 0;
    case EntryMethod::kPost: return 1;
    case EntryMethod::kPut:
    case EntryMethod::kPatch: return 2;
    case EntryMethod::kGet: return 3;
  }
  return 3;
}

std::optional<int64_t> ParseVersionTag(std::string_view s) {
  if (s.substr(0, 2) == "W/") s.remove_prefix(2);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v > 0 ? std::optional<int64_t>(v) : std::nullopt;
}

bool Unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ':' || c == '/' || c == '|' || c == '$' || c == '@';
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (Unreserved(c)) out += c;
    else out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
  }
  return out;
}

// The target of a GET or HEAD entry: request.url relative to the base, its
// type and id when it is Type/id. Everything else (which interaction, valid
// parameters) is decided when the entry is routed.
std::optional<Error> ReadGetTarget(TransactionEntry& e, const Definitions& defs) {
  const std::string where = fmt::format("Bundle.entry[{}].request.url", e.index);
  std::string_view url = e.url;
  if (url.empty()) return MakeError(ErrorKind::kInvalid, "the entry has no request.url", where);
  std::string_view query;
  if (auto q = url.find('?'); q != std::string_view::npos) {
    query = url.substr(q);
    url = url.substr(0, q);
  }
  const bool absolute = url.find("://") != std::string_view::npos;
  if (absolute) {
    url.remove_prefix(url.find("://") + 3);
    auto slash = url.find('/');
    url = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  }
  std::vector<std::string> segs;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= url.size(); ++i)
    if (i == url.size() || url[i] == '/') {
      if (i > start) segs.emplace_back(url.substr(start, i - start));
      start = i + 1;
    }
  if (absolute) {
    // an absolute URL carries the base before the part that names the interaction
    std::size_t first = 0;
    while (first < segs.size() && !defs.IsResourceType(segs[first]) && segs[first] != "_history" &&
           segs[first] != "metadata")
      ++first;
    segs.erase(segs.begin(), segs.begin() + static_cast<long>(first));
  }
  e.read_url.clear();
  for (std::size_t i = 0; i < segs.size(); ++i) e.read_url += (i ? "/" : "") + segs[i];
  e.read_url += query;
  if (!segs.empty() && defs.IsResourceType(segs[0])) {
    e.type = segs[0];
    if (segs.size() == 2 && query.empty()) e.id = segs[1];
  }
  return std::nullopt;
}

// Fills type/id (and, for a conditional entry, the criteria) from
// request.url: "Patient", "Patient/1", "Patient?identifier=...", or an
// absolute URL ending in one of these. Returns the error for this entry.
std::optional<Error> ReadTarget(TransactionEntry& e, const Definitions& defs) {
  const std::string where = fmt::format("Bundle.entry[{}].request.url", e.index);
  std::string_view url = e.url;
  if (url.empty()) return MakeError(ErrorKind::kInvalid, "the entry has no request.url", where);
  std::optional<std::string_view> query;
  if (auto q = url.find('?'); q != std::string_view::npos) {
    query = url.substr(q + 1);
    url = url.substr(0, q);
    if (e.method == EntryMethod::kPost)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("'{}': POST takes a type; a conditional create uses request.ifNoneExist", e.url),
                       where);
  }
  std::vector<std::string> segs;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= url.size(); ++i)
    if (i == url.size() || url[i] == '/') {
      if (i > start) segs.emplace_back(url.substr(start, i - start));
      start = i + 1;
    }
  // the resource type is the last segment naming one (absolute URLs carry a base before it)
  std::size_t t = segs.size();
  for (std::size_t i = segs.size(); i-- > 0;)
    if (defs.IsResourceType(segs[i])) {
      t = i;
      break;
    }
  if (t == segs.size()) return MakeError(ErrorKind::kNotFound, fmt::format("'{}' names no known resource type", e.url), where);
  e.type = segs[t];
  std::size_t rest = segs.size() - t - 1;
  if (rest > 1) return MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not Type, Type/id or Type?criteria", e.url), where);
  if (query) {
    if (rest != 0)
      return MakeError(ErrorKind::kInvalid, fmt::format("'{}': conditional {} takes Type?criteria", e.url,
                                                        EntryMethodCode(e.method)),
                       where);
    auto params = ParseQueryString(*query);
    if (!params) return MakeError(ErrorKind::kInvalid, fmt::format("'{}': the criteria are not a valid query", e.url), where);
    if (params->empty())
      return MakeError(ErrorKind::kInvalid, fmt::format("'{}': a conditional {} needs search criteria", e.url,
                                                        EntryMethodCode(e.method)),
                       where);
    e.criteria = std::move(*params);
    return std::nullopt;
  }
  const bool wants_id = e.method != EntryMethod::kPost;
  if (wants_id && rest != 1)
    return MakeError(ErrorKind::kInvalid, fmt::format("{} needs Type/id, got '{}'", EntryMethodCode(e.method), e.url), where);
  if (!wants_id && rest != 0) return MakeError(ErrorKind::kInvalid, fmt::format("POST takes a type, got '{}'", e.url), where);
  if (wants_id) {
    e.id = segs[t + 1];
    if (!IsValidId(e.id)) return MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not a valid id", e.id), where);
  }
  return std::nullopt;
}

// request.ifNoneExist: "criteria", "?criteria" or "Type?criteria".
std::optional<Error> ReadIfNoneExist(TransactionEntry& e, std::string_view value) {
  const std::string where = fmt::format("Bundle.entry[{}].request.ifNoneExist", e.index);
  if (e.method != EntryMethod::kPost)
    return MakeError(ErrorKind::kInvalid, "ifNoneExist belongs to POST entries (conditional create)", where);
  if (auto q = value.find('?'); q != std::string_view::npos) {
    std::string_view before = value.substr(0, q);
    if (auto slash = before.rfind('/'); slash != std::string_view::npos) before.remove_prefix(slash + 1);
    if (!before.empty() && before != e.type)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("ifNoneExist '{}' searches {}, but the entry creates a {}", value, before, e.type),
                       where);
  }
  auto params = ParseQueryString(value);
  if (!params) return MakeError(ErrorKind::kInvalid, fmt::format("ifNoneExist '{}' is not a valid query", value), where);
  if (params->empty()) return MakeError(ErrorKind::kInvalid, "ifNoneExist has no search criteria", where);
  e.criteria = std::move(*params);
  return std::nullopt;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The body of a PATCH entry: a Parameters resource (FHIRPath Patch) or a
// Binary holding a JSON Patch.
std::optional<Error> ReadPatch(TransactionEntry& e, Resource patch) {
  const std::string at = fmt::format("Bundle.entry[{}].resource", e.index);
  if (patch.type() == "Parameters") {
    e.fhirpath_patch = std::move(patch);
    return std::nullopt;
  }
  if (patch.type() != "Binary")
    return MakeError(ErrorKind::kInvalid,
                     "a PATCH entry carries a Parameters resource (FHIRPath Patch) or a Binary holding a JSON Patch",
                     at + ".resourceType");
  const auto& doc = patch.tree().doc;
  std::string content_type = Lower(Text(Member(doc, "contentType")));
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();
  if (content_type != "application/json-patch+json")
    return MakeError(ErrorKind::kInvalid,
                     fmt::format("a Binary in a PATCH entry must hold application/json-patch+json, not '{}'", content_type),
                     at + ".contentType");
  auto decoded = DecodeBase64(Text(Member(doc, "data")));
  if (!decoded || decoded->empty())
    return MakeError(ErrorKind::kInvalid, "the Binary's data is not a base64 JSON Patch", at + ".data");
  e.json_patch = std::move(*decoded);
  return std::nullopt;
}

std::optional<Error> ReadEntry(const JsonValue& entry, TransactionEntry& e, const Definitions& defs) {
  const std::string at = fmt::format("Bundle.entry[{}]", e.index);
  e.full_url = Text(Member(entry, "fullUrl"));
  const JsonValue* request = Member(entry, "request");
  if (request == nullptr) return MakeError(ErrorKind::kInvalid, "the entry has no request", at + ".request");
  std::string method = Text(Member(*request, "method"));
  if (method == "GET" || method == "HEAD") {
    e.method = EntryMethod::kGet;
    e.head = method == "HEAD";
  }
  else if (method == "POST") e.method = EntryMethod::kPost;
  else if (method == "PUT") e.method = EntryMethod::kPut;
  else if (method == "DELETE") e.method = EntryMethod::kDelete;
  else if (method == "PATCH") e.method = EntryMethod::kPatch;
  else return MakeError(ErrorKind::kInvalid, fmt::format("unknown request.method '{}'", method), at + ".request.method");
  e.url = Text(Member(*request, "url"));
  if (const JsonValue* im = Member(*request, "ifMatch")) {
    e.if_match = ParseVersionTag(Text(im));
    if (!e.if_match) return MakeError(ErrorKind::kInvalid, "ifMatch is not a version ETag such as W/\"3\"", at + ".request.ifMatch");
  }
  if (e.method == EntryMethod::kGet) {
    if (Member(*request, "ifNoneExist") != nullptr)
      return MakeError(ErrorKind::kInvalid, "ifNoneExist belongs to POST entries (conditional create)",
                       at + ".request.ifNoneExist");
    return ReadGetTarget(e, defs);
  }
  if (auto err = ReadTarget(e, defs)) return err;
  if (const JsonValue* ine = Member(*request, "ifNoneExist")) {
    if (auto err = ReadIfNoneExist(e, Text(ine))) return err;
  }
  const JsonValue* resource = Member(entry, "resource");
  if (e.method == EntryMethod::kPatch) {
    if (resource == nullptr) return MakeError(ErrorKind::kInvalid, "PATCH needs a resource (the patch)", at + ".resource");
    auto parsed = Resource::Parse(SerializeJson(*resource));
    if (!parsed) return std::move(parsed.error());
    return ReadPatch(e, std::move(*parsed));
  }
  if (e.method == EntryMethod::kPost || e.method == EntryMethod::kPut) {
    if (resource == nullptr) return MakeError(ErrorKind::kInvalid, fmt::format("{} needs a resource", method), at + ".resource");
    auto parsed = Resource::Parse(SerializeJson(*resource));
    if (!parsed) return std::move(parsed.error());
    if (parsed->type() != e.type)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("resourceType '{}' does not match request.url '{}'", parsed->type(), e.url),
                       at + ".resource.resourceType");
    if (e.method == EntryMethod::kPut && !e.conditional()) {
      auto id = parsed->id();
      if (!id || *id != e.id)
        return MakeError(ErrorKind::kInvalid,
                         fmt::format("the resource id '{}' does not match request.url '{}'", id.value_or(""), e.url),
                         at + ".resource.id");
    } else if (e.method == EntryMethod::kPost) {
      e.id = NewResourceId();
    }
    e.resource = std::move(*parsed);
  }
  return std::nullopt;
}

// Rewrites the parameter values of `url`'s query that `map` knows (each
// comma-separated value on its own); the query is re-encoded only when one
// changed.
template <class Map>
void RewriteQueryReferences(std::string& url, const Map& map) {
  auto q = url.find('?');
  if (q == std::string::npos) return;
  auto params = ParseQueryString(std::string_view(url).substr(q + 1));
  if (!params) return;
  bool changed = false;
  for (auto& [key, value] : *params) {
    std::string rewritten;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= value.size(); ++i) {
      if (i < value.size() && !(value[i] == ',' && (i == 0 || value[i - 1] != '\\'))) continue;
      std::string_view part = std::string_view(value).substr(start, i - start);
      if (auto to = map(part)) {
        rewritten += *to;
        changed = true;
      } else {
        rewritten += part;
      }
      if (i < value.size()) rewritten += ',';
      start = i + 1;
    }
    value = std::move(rewritten);
  }
  if (!changed) return;
  std::string out = url.substr(0, q + 1);
  for (std::size_t i = 0; i < params->size(); ++i) {
    if (i) out += '&';
    out += PercentEncode((*params)[i].first) + "=" + PercentEncode((*params)[i].second);
  }
  url = std::move(out);
}

}  // namespace

const char* EntryMethodCode(EntryMethod m) {
  switch (m) {
    case EntryMethod::kGet: return "GET";
    case EntryMethod::kPost: return "POST";
    case EntryMethod::kPut: return "PUT";
    case EntryMethod::kDelete: return "DELETE";
    case EntryMethod::kPatch: return "PATCH";
  }
  return "GET";
}

TransactionEntry TransactionEntry::Clone() const {
  TransactionEntry e;
  e.index = index;
  e.method = method;
  e.full_url = full_url;
  e.url = url;
  e.type = type;
  e.id = id;
  e.criteria = criteria;
  e.if_match = if_match;
  if (resource) e.resource = resource->Clone();
  if (fhirpath_patch) e.fhirpath_patch = fhirpath_patch->Clone();
  e.json_patch = json_patch;
  e.error = error;
  e.read_url = read_url;
  e.head = head;
  return e;
}

Result<TransactionPlan> PlanTransaction(const Resource& bundle, const Definitions& defs) {
  const auto& doc = bundle.tree().doc;
  TransactionPlan plan;
  std::string type = Text(Member(doc, "type"));
  if (type == "batch") plan.batch = true;
  else if (type != "transaction")
    return MakeError(ErrorKind::kInvalid, fmt::format("a Bundle posted to the base must be a transaction or batch, not '{}'", type),
                     "Bundle.type");
  const JsonValue* entries = Member(doc, "entry");
  if (entries != nullptr && entries->IsArray()) {
    for (rapidjson::SizeType i = 0; i < entries->Size(); ++i) {
      TransactionEntry e;
      e.index = i;
      if (auto err = ReadEntry((*entries)[i], e, defs)) {
        if (!plan.batch) return std::move(*err);
        e.error = std::move(err);
      }
      plan.entries.push_back(std::move(e));
    }
  }
  if (!plan.batch) {
    // fullUrls name entries; two writes of one resource are an error
    std::map<std::string, std::size_t> full_urls;
    for (const auto& e : plan.entries) {
      if (e.full_url.empty()) continue;
      auto [it, fresh] = full_urls.emplace(e.full_url, e.index);
      if (!fresh)
        return MakeError(ErrorKind::kInvalid,
                         fmt::format("entries {} and {} have the same fullUrl '{}'", it->second, e.index, e.full_url),
                         fmt::format("Bundle.entry[{}].fullUrl", e.index));
    }
    if (auto err = CheckDistinctTargets(plan.entries)) return std::move(*err);
  }
  plan.order.resize(plan.entries.size());
  for (std::size_t i = 0; i < plan.order.size(); ++i) plan.order[i] = i;
  std::stable_sort(plan.order.begin(), plan.order.end(), [&plan](std::size_t a, std::size_t b) {
    return Rank(plan.entries[a].method) < Rank(plan.entries[b].method);
  });
  return plan;
}

std::optional<Error> CheckDistinctTargets(const std::vector<TransactionEntry>& entries) {
  std::map<std::pair<std::string, std::string>, std::size_t> writes;
  for (const auto& e : entries) {
    if (e.method == EntryMethod::kGet || e.id.empty()) continue;
    auto [it, fresh] = writes.emplace(std::make_pair(e.type, e.id), e.index);
    if (!fresh)
      return MakeError(ErrorKind::kInvalid,
                       fmt::format("entries {} and {} both write {}/{}", it->second, e.index, e.type, e.id),
                       fmt::format("Bundle.entry[{}]", e.index));
  }
  return std::nullopt;
}

void RewriteEntryReferences(std::vector<TransactionEntry>& entries, const std::map<std::string, std::string>& resolved) {
  std::map<std::string, std::string> rewrite = resolved;
  for (const auto& e : entries) {
    if (e.full_url.empty() || e.id.empty()) continue;
    if (e.method == EntryMethod::kGet || e.method == EntryMethod::kDelete) continue;
    std::string target = e.type + "/" + e.id;
    rewrite[e.full_url] = target;
    // an absolute RESTful fullUrl also names the entry by its relative form
    auto pos = e.full_url.rfind("/" + e.type + "/");
    if (pos != std::string::npos && e.full_url.find("://") != std::string::npos)
      rewrite[e.full_url.substr(pos + 1)] = target;
  }
  if (rewrite.empty()) return;
  auto map = [&rewrite](std::string_view ref) -> std::optional<std::string> {
    auto it = rewrite.find(std::string(ref));
    if (it == rewrite.end()) return std::nullopt;
    return it->second;
  };
  for (auto& e : entries) {
    if (e.resource) e.resource->RewriteReferences(map);
    if (e.fhirpath_patch) e.fhirpath_patch->RewriteReferences(map);
    if (e.method == EntryMethod::kGet) {
      // GET urn:uuid:... (or another entry's fullUrl) reads what that entry wrote
      const std::size_t q = std::min(e.read_url.find('?'), e.read_url.size());
      if (auto to = map(std::string_view(e.read_url).substr(0, q))) e.read_url = *to + e.read_url.substr(q);
      RewriteQueryReferences(e.read_url, map);
    }
  }
}

std::vector<std::string> ConditionalReferences(const TransactionEntry& entry, const Definitions& defs) {
  std::vector<std::string> out;
  auto collect = [&](std::string_view ref) {
    auto q = ref.find('?');
    if (q != std::string_view::npos && q > 0 && defs.IsResourceType(ref.substr(0, q)) &&
        std::find(out.begin(), out.end(), ref) == out.end())
      out.emplace_back(ref);
  };
  if (entry.resource) entry.resource->ForEachReference(collect);
  if (entry.fhirpath_patch) entry.fhirpath_patch->ForEachReference(collect);
  return out;
}

}  // namespace eds::fhir
