// The audit trail seen as FHIR AuditEvent resources (storage-internal): each
// audit_event row is one read-only AuditEvent, rendered when read, so every
// request is an AuditEvent the moment its row is written (a write's in its
// own transaction) without a second copy of the trail.
#pragma once

#include <pqxx/transaction_base>

#include <string>

#include "storage/pg_audit_sink.hpp"
#include "storage/resource_store.hpp"

namespace eds::storage {

// The AuditEvent JSON of an audit row.
std::string RenderAuditEvent(const AuditRow& row);

// The AuditEvent `id`; kNotFound when no row has it.
fhir::Result<fhir::VersionRecord> ReadAuditEvent(pqxx::transaction_base& tx, const std::string& id);

// A search on AuditEvent (query.resource_type == "AuditEvent"), newest first
// unless _sort=date, with keyset cursors.
fhir::Result<SearchPage> SearchAuditEvents(pqxx::transaction_base& tx, const fhir::SearchQuery& query);

}  // namespace eds::storage
