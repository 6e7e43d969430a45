// History Bundle rendering by direct string building: stored resources are
// embedded verbatim, so a page of history costs no JSON parsing.
#include "fhir/bundle.hpp"

#include <fmt/format.h>

#include "fhir/json.hpp"
#include "fhir/json_internal.hpp"
#include "fhir/outcome.hpp"
#include "fhir/primitives.hpp"

namespace eds::fhir {

std::string VersionETag(int64_t version) { return fmt::format("W/\"{}\"", version); }

std::string BuildHistoryBundle(std::string_view base_url, const std::vector<VersionRecord>& entries,
                               const std::vector<BundleLink>& links, std::optional<int64_t> total) {
  std::string out;
  std::size_t size = 256;
  for (const auto& e : entries) size += e.content.size() + 384;
  out.reserve(size);
  out += R"({"resourceType":"Bundle","type":"history",)";
  if (total) fmt::format_to(std::back_inserter(out), R"("total":{},)", *total);
  out += R"("link":[)";
  for (std::size_t i = 0; i < links.size(); ++i) {
    if (i) out += ',';
    out += R"({"relation":)";
    AppendJsonString(out, links[i].relation);
    out += R"(,"url":)";
    AppendJsonString(out, links[i].url);
    out += '}';
  }
  out += R"(],"entry":[)";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (i) out += ',';
    out += R"({"fullUrl":)";
    AppendJsonString(out, fmt::format("{}/{}/{}", base_url, e.type, e.id));
    if (!e.deleted && !e.content.empty()) {
      out += R"(,"resource":)";
      out += e.content;
    }
    const char* method = e.method == WriteMethod::kCreate   ? "POST"
                         : e.method == WriteMethod::kUpdate ? "PUT"
                                                            : "DELETE";
    std::string url = e.method == WriteMethod::kCreate ? e.type : e.type + "/" + e.id;
    const char* status = e.deleted                                           ? "204 No Content"
                         : e.method == WriteMethod::kCreate || e.version == 1 ? "201 Created"
                                                                              : "200 OK";
    out += R"(,"request":{"method":")";
    out += method;
    out += R"(","url":)";
    AppendJsonString(out, url);
    out += R"(},"response":{"status":")";
    out += status;
    out += R"(","etag":)";
    AppendJsonString(out, VersionETag(e.version));
    out += R"(,"lastModified":")";
    out += FormatInstant(e.last_updated_ms);
    out += R"("}})";
  }
  out += "]}";
  return out;
}

Outcome CheckDocumentBundle(const Resource& bundle) {
  Outcome out;
  const auto& doc = bundle.tree().doc;
  auto str = [](const JsonValue& obj, const char* key) -> std::string {
    if (!obj.IsObject()) return {};
    auto it = obj.FindMember(key);
    return it != obj.MemberEnd() && IsString(it->value) ? std::string(StringOf(it->value)) : std::string();
  };
  if (bundle.type() != "Bundle" || str(doc, "type") != "document") return out;
  auto error = [&](std::string message, std::string expression) {
    out.Add({Severity::kError, "invariant", std::move(message), std::move(expression)});
  };
  auto ident = doc.FindMember("identifier");
  if (ident == doc.MemberEnd() || str(ident->value, "system").empty() || str(ident->value, "value").empty())
    error("a document Bundle must have an identifier with a system and a value (bdl-9)", "Bundle.identifier");
  if (str(doc, "timestamp").empty())
    error("a document Bundle must have a timestamp (bdl-10)", "Bundle.timestamp");
  auto entries = doc.FindMember("entry");
  if (entries == doc.MemberEnd() || !entries->value.IsArray() || entries->value.Empty()) {
    error("a document Bundle must start with a Composition (bdl-11)", "Bundle.entry");
    return out;
  }
  const auto& list = entries->value;
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const auto& e = list[i];
    const std::string at = fmt::format("Bundle.entry[{}]", i);
    auto res = e.IsObject() ? e.FindMember("resource") : e.MemberEnd();
    if (!e.IsObject() || res == e.MemberEnd()) {
      error("every entry of a document Bundle holds a resource", at + ".resource");
      continue;
    }
    if (i == 0 && str(res->value, "resourceType") != "Composition")
      error("a document Bundle must have a Composition as its first resource (bdl-11)", at + ".resource");
    if (str(e, "fullUrl").empty()) error("every entry of a document Bundle has a fullUrl", at + ".fullUrl");
  }
  return out;
}

}  // namespace eds::fhir
