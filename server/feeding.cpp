// Facts of FSE documents for feeding records.
#include "server/feeding.hpp"

#include "fhir/local_bases.hpp"

#include <rapidjson/document.h>

#include <deque>
#include <map>
#include <utility>
#include <vector>

namespace eds::server {
namespace {

using Value = rapidjson::Value;
// The resource a reference names, or null.
using Resolver = std::function<const Value*(std::string_view reference)>;

const char* const kFiscalCodeSystems[] = {"urn:oid:2.16.840.1.113883.2.9.4.3.2", "http://hl7.it/sid/codiceFiscale"};

const Value* Member(const Value* obj, const char* key) {
  if (obj == nullptr || !obj->IsObject()) return nullptr;
  auto it = obj->FindMember(key);
  return it == obj->MemberEnd() ? nullptr : &it->value;
}

std::string Str(const Value* obj, const char* key) {
  const Value* v = Member(obj, key);
  if (v == nullptr || !v->IsString()) return {};
  return {v->GetString(), v->GetStringLength()};
}

const Value* First(const Value* array) {
  if (array == nullptr || !array->IsArray() || array->Empty()) return nullptr;
  return &(*array)[0];
}

std::string TypeOf(const Value* resource) { return Str(resource, "resourceType"); }

// The LOINC code of a CodeableConcept, else its first code.
std::string LoincCode(const Value* codeable_concept) {
  const Value* codings = Member(codeable_concept, "coding");
  if (codings == nullptr || !codings->IsArray()) return {};
  for (const auto& c : codings->GetArray())
    if (Str(&c, "system") == "http://loinc.org" && !Str(&c, "code").empty()) return Str(&c, "code");
  for (const auto& c : codings->GetArray())
    if (!Str(&c, "code").empty()) return Str(&c, "code");
  return {};
}

std::string FiscalCodeOf(const Value* patient) {
  const Value* ids = Member(patient, "identifier");
  if (ids == nullptr || !ids->IsArray()) return {};
  for (const char* system : kFiscalCodeSystems)
    for (const auto& id : ids->GetArray())
      if (Str(&id, "system") == system && !Str(&id, "value").empty()) return Str(&id, "value");
  return {};
}

// An organisation as analysts group by it: its first identifier's value
// (the code of the health facility), else its name.
std::string OrganisationName(const Value* org) {
  if (auto v = Str(First(Member(org, "identifier")), "value"); !v.empty()) return v;
  return Str(org, "name");
}

std::string ReferenceOf(const Value* holder) { return Str(holder, "reference"); }

// Every reference of an element that holds one Reference or a list of them.
std::vector<std::string> References(const Value* element) {
  std::vector<std::string> out;
  if (element == nullptr) return out;
  if (element->IsArray()) {
    for (const auto& r : element->GetArray())
      if (auto ref = ReferenceOf(&r); !ref.empty()) out.push_back(ref);
  } else if (auto ref = ReferenceOf(element); !ref.empty()) {
    out.push_back(ref);
  }
  return out;
}

// "Type/id" of a literal reference (relative, absolute, with _history);
// empty for urn: and conditional references.
std::pair<std::string, std::string> TypeAndId(std::string_view ref) {
  if (ref.rfind("urn:", 0) == 0 || ref.find('?') != std::string_view::npos) return {};
  if (auto h = ref.find("/_history/"); h != std::string_view::npos) ref = ref.substr(0, h);
  auto slash = ref.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  auto type_start = ref.rfind('/', slash - 1);
  type_start = type_start == std::string_view::npos ? 0 : type_start + 1;
  std::string type(ref.substr(type_start, slash - type_start));
  if (type.empty() || type[0] < 'A' || type[0] > 'Z') return {};
  return {type, std::string(ref.substr(slash + 1))};
}

// TypeAndId of a reference to a stored resource: relative, or absolute
// under one of the server's own bases; empty for other servers' resources.
std::pair<std::string, std::string> LocalTypeAndId(std::string_view ref, const fhir::LocalBases& local) {
  if (ref.find("://") != std::string_view::npos) {
    auto relative = local.Relative(ref);
    if (!relative) return {};
    ref = *relative;
  }
  return TypeAndId(ref);
}

void Fill(DocumentFacts& f, const Value* composition, const Value* document_reference, const Value* bundle,
          const Resolver& resolve, const fhir::LocalBases& local) {
  f.document_type = LoincCode(Member(composition, "type"));
  if (f.document_type.empty()) f.document_type = LoincCode(Member(document_reference, "type"));
  f.tipo_documento_liv_alto = Str(First(Member(First(Member(document_reference, "category")), "coding")), "code");

  // the patient: the subject of the Composition, else of the DocumentReference
  for (const Value* holder : {composition, document_reference}) {
    auto ref = ReferenceOf(Member(holder, "subject"));
    if (ref.empty()) continue;
    if (const Value* p = resolve(ref); p != nullptr && TypeOf(p) == "Patient") f.fiscal_code = FiscalCodeOf(p);
    if (auto [type, id] = LocalTypeAndId(ref, local); type == "Patient") f.patient = "Patient/" + id;
    if (!f.fiscal_code.empty() || !f.patient.empty()) break;
  }

  // the producer organisation: the custodian, else an author organisation
  // (directly or through a PractitionerRole)
  std::vector<std::string> authors = References(Member(composition, "author"));
  for (const auto& a : References(Member(document_reference, "author"))) authors.push_back(a);
  const Value* org = nullptr;
  for (const Value* holder : {composition, document_reference}) {
    auto ref = ReferenceOf(Member(holder, "custodian"));
    if (org == nullptr && !ref.empty()) org = resolve(ref);
  }
  for (const auto& a : authors) {
    if (org != nullptr) break;
    const Value* author = resolve(a);
    if (TypeOf(author) == "Organization") {
      org = author;
    } else if (TypeOf(author) == "PractitionerRole") {
      auto ref = ReferenceOf(Member(author, "organization"));
      if (!ref.empty()) org = resolve(ref);
    }
  }
  if (TypeOf(org) == "Organization") f.producer_org = OrganisationName(org);

  // the producer application: an author Device (the software that wrote the
  // document), else the source system in meta.source
  for (const auto& a : authors) {
    const Value* device = resolve(a);
    if (TypeOf(device) != "Device") continue;
    f.producer_app_id = Str(First(Member(device, "identifier")), "value");
    if (f.producer_app_id.empty()) f.producer_app_id = Str(First(Member(device, "deviceName")), "name");
    f.producer_app_vendor = Str(device, "manufacturer");
    f.producer_app_version = Str(First(Member(device, "version")), "value");
    break;
  }
  if (f.producer_app_id.empty())
    for (const Value* holder : {bundle, composition, document_reference})
      if (auto source = Str(Member(holder, "meta"), "source"); !source.empty()) {
        f.producer_app_id = source;
        break;
      }
}

}  // namespace

DocumentFacts FactsOfBundle(std::string_view bundle_json, const fhir::LocalBases& local) {
  DocumentFacts f;
  rapidjson::Document doc;
  doc.Parse(bundle_json.data(), bundle_json.size());
  if (doc.HasParseError() || !doc.IsObject()) return f;
  const Value* entries = Member(&doc, "entry");
  if (entries == nullptr || !entries->IsArray()) return f;
  f.entries = static_cast<int>(entries->Size());
  // entries by fullUrl, and by Type/id (also the tail of an absolute fullUrl)
  std::map<std::string, const Value*, std::less<>> by_reference;
  const Value* composition = nullptr;
  const Value* document_reference = nullptr;
  const Value* first_patient = nullptr;
  for (const auto& e : entries->GetArray()) {
    const Value* r = Member(&e, "resource");
    if (r == nullptr || !r->IsObject()) continue;
    const std::string type = TypeOf(r);
    if (auto url = Str(&e, "fullUrl"); !url.empty()) {
      by_reference.emplace(url, r);
      if (auto [t, id] = TypeAndId(url); !t.empty()) by_reference.emplace(t + "/" + id, r);
    }
    if (auto id = Str(r, "id"); !id.empty()) by_reference.emplace(type + "/" + id, r);
    if (type == "Composition" && composition == nullptr) composition = r;
    if (type == "DocumentReference" && document_reference == nullptr) document_reference = r;
    if (type == "Patient" && first_patient == nullptr) first_patient = r;
  }
  auto resolve = [&](std::string_view ref) -> const Value* {
    if (auto it = by_reference.find(ref); it != by_reference.end()) return it->second;
    if (auto [t, id] = TypeAndId(ref); !t.empty())
      if (auto it = by_reference.find(t + "/" + id); it != by_reference.end()) return it->second;
    return nullptr;
  };
  Fill(f, composition, document_reference, &doc, resolve, local);
  // a subject that is neither in the Bundle nor a stored Patient: the Bundle's Patient
  if (f.fiscal_code.empty() && f.patient.empty()) f.fiscal_code = FiscalCodeOf(first_patient);
  return f;
}

DocumentFacts FactsOfStored(const std::string& composition, const std::string& document_reference,
                            const StoredReader& read, const fhir::LocalBases& local) {
  DocumentFacts f;
  std::deque<rapidjson::Document> parsed;  // every resource read stays alive while Fill looks at it
  auto parse = [&](const std::string& text) -> const Value* {
    if (text.empty()) return nullptr;
    auto& d = parsed.emplace_back();
    d.Parse(text.data(), text.size());
    return d.HasParseError() || !d.IsObject() ? nullptr : &d;
  };
  const Value* c = parse(composition);
  const Value* dr = parse(document_reference);
  auto resolve = [&](std::string_view ref) -> const Value* {
    auto [type, id] = LocalTypeAndId(ref, local);
    if (type.empty()) return nullptr;
    auto content = read(type, id);
    return content ? parse(*content) : nullptr;
  };
  Fill(f, c, dr, nullptr, resolve, local);
  return f;
}

}  // namespace eds::server
