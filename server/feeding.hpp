// What a feeding record says about an FSE document besides the call
// itself: its type, its producer and its patient, read from the document's
// Bundle (PUBLISH, REPLACE) or from its stored resources (UPDATE, DELETE).
// docs/monitoring.md lists where each comes from.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace eds::fhir {
class LocalBases;
}

namespace eds::server {

struct DocumentFacts {
  std::string document_type;            // LOINC code of Composition.type (else DocumentReference.type)
  std::string tipo_documento_liv_alto;  // DocumentReference.category[0].coding[0].code
  std::string producer_app_id, producer_app_vendor, producer_app_version;
  std::string producer_org;             // custodian organisation: identifier value, else name
  std::string fiscal_code;              // the patient's, in clear: hash it before it is stored
  std::string patient;                  // Patient/id, when the document names a stored Patient
  int entries = 0;                      // entries of the Bundle
};

// Facts of a document's transaction Bundle (JSON text). Never fails: what
// cannot be read (not JSON, no Composition, ...) stays empty. An absolute
// reference names a stored resource only under one of `local` (the
// server's own bases); a Patient of another server is not a local patient.
DocumentFacts FactsOfBundle(std::string_view bundle_json, const fhir::LocalBases& local);

// Facts of a stored document, from its Composition and DocumentReference
// (JSON text; the Composition may be empty) and the resources they name,
// which `read` returns (the content of Type/id, nullopt when it has none).
using StoredReader = std::function<std::optional<std::string>(const std::string& type, const std::string& id)>;
DocumentFacts FactsOfStored(const std::string& composition, const std::string& document_reference,
                            const StoredReader& read, const fhir::LocalBases& local);

}  // namespace eds::server
