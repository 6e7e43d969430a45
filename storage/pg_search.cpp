// Search on PostgreSQL: a SearchQuery becomes one SELECT over the current
// resources, each criterion an EXISTS over the typed index tables, every
// value a bound parameter; pages are cut with a keyset cursor.
#include <fmt/format.h>

#include <pqxx/pqxx>

#include <map>
#include <set>

#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_query.hpp"
#include "storage/pg_resource_store.hpp"
#include "storage/pg_search.hpp"

namespace eds::storage {
namespace {

using fhir::ErrorKind;
using fhir::MakeError;
using fhir::Prefix;
using fhir::SearchParamType;

#define EDS_TS_SQL(p) "(timestamptz 'epoch' + " + p + "::bigint * interval '1 millisecond')"

// Text array literal of `values` for an ANY($n::text[]) parameter.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i ? ",\"" : "\"");
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

class SqlBuilder {
 public:
  std::string Param(std::string value) {
    params_.push_back(std::move(value));
    return "$" + std::to_string(params_.size());
  }
  const std::vector<std::string>& params() const { return params_; }

 private:
  std::vector<std::string> params_;
};

// LIKE pattern text with % _ \ escaped.
std::string LikeEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Date comparison of a search value [ql, qh) with an indexed range [vl, vh),
// as the R4 search page defines each prefix. Bounds become parameters only
// when the condition uses them.
std::string DateCondition(SqlBuilder& sql, Prefix prefix, const std::string& vl, const std::string& vh,
                          const fhir::InstantRange& q) {
  std::string ql_sql, qh_sql;
  auto ql = [&]() -> const std::string& {
    if (ql_sql.empty()) ql_sql = EDS_TS_SQL(sql.Param(std::to_string(q.low_ms)));
    return ql_sql;
  };
  auto qh = [&]() -> const std::string& {
    if (qh_sql.empty()) qh_sql = EDS_TS_SQL(sql.Param(std::to_string(q.high_ms)));
    return qh_sql;
  };
  auto eq = [&] { return "(" + vl + " >= " + ql() + " AND " + vh + " <= " + qh() + ")"; };
  switch (prefix) {
    case Prefix::kEq: return eq();
    case Prefix::kNe: return "NOT " + eq();
    case Prefix::kGt: return "(" + vh + " > " + qh() + ")";
    case Prefix::kLt: return "(" + vl + " < " + ql() + ")";
    case Prefix::kGe: return "(" + vh + " > " + qh() + " OR " + eq() + ")";
    case Prefix::kLe: return "(" + vl + " < " + ql() + " OR " + eq() + ")";
    case Prefix::kSa: return "(" + vl + " >= " + qh() + ")";
    case Prefix::kEb: return "(" + vh + " <= " + ql() + ")";
    case Prefix::kAp: return "(" + vl + " < " + qh() + " AND " + vh + " > " + ql() + ")";
  }
  return eq();
}

class Translator {
 public:
  explicit Translator(SqlBuilder& sql) : sql_(sql) {}

  // The condition for one criterion on the resource aliased `r`; an error
  // for what this store cannot answer yet.
  fhir::Result<std::string> Criterion(const fhir::SearchCriterion& c, const std::string& r) {
    return Linked(c, r, 0, 0);
  }

 private:
  // Reverse links (_has) first, outermost first, then the forward chain,
  // then the parameter itself, each step an EXISTS over search_reference
  // joined to the current resources it links.
  fhir::Result<std::string> Linked(const fhir::SearchCriterion& c, const std::string& r, std::size_t reverse,
                                   std::size_t chain) {
    if (reverse < c.reverse.size()) {
      const auto& link = c.reverse[reverse];
      const std::string ref = Alias("hr"), res = Alias("h");
      auto inner = Linked(c, res, reverse + 1, chain);
      if (!inner) return inner;
      return "EXISTS (SELECT 1 FROM search_reference " + ref + " JOIN resource " + res + " ON " + res +
             ".res_type = " + ref + ".res_type AND " + res + ".res_id = " + ref + ".res_id AND NOT " + res +
             ".deleted WHERE " + ref + ".res_type = " + sql_.Param(link.resource_type) + " AND " + ref +
             ".param = " + sql_.Param(link.param->code) + " AND " + ref + ".target_type = " + r + ".res_type AND " +
             ref + ".target_id = " + r + ".res_id AND " + *inner + ")";
    }
    if (chain < c.chain.size()) {
      const auto& link = c.chain[chain];
      const std::string ref = Alias("cr"), res = Alias("t");
      auto inner = Linked(c, res, reverse, chain + 1);
      if (!inner) return inner;
      return "EXISTS (SELECT 1 FROM search_reference " + ref + " JOIN resource " + res + " ON " + res +
             ".res_type = " + ref + ".target_type AND " + res + ".res_id = " + ref + ".target_id AND NOT " + res +
             ".deleted WHERE " + ref + ".res_type = " + r + ".res_type AND " + ref + ".res_id = " + r +
             ".res_id AND " + ref + ".param = " + sql_.Param(link.param->code) + " AND " + ref +
             ".target_type = " + sql_.Param(link.target_type) + " AND " + *inner + ")";
    }
    return Direct(c, r);
  }

  std::string Alias(const char* stem) { return stem + std::to_string(++aliases_); }

  fhir::Result<std::string> Direct(const fhir::SearchCriterion& c, const std::string& r) {
    const auto& p = *c.param;
    if (p.code == "_id") return Ids(c, r);
    if (p.code == "_lastUpdated") return LastUpdated(c, r);
    std::string table, value_sql;
    switch (p.type) {
      case SearchParamType::kToken: table = "search_token"; break;
      case SearchParamType::kUri: table = "search_uri"; break;
      case SearchParamType::kDate: table = "search_date"; break;
      case SearchParamType::kString: table = "search_string"; break;
      case SearchParamType::kNumber: table = "search_number"; break;
      case SearchParamType::kQuantity: table = "search_quantity"; break;
      case SearchParamType::kReference: table = "search_reference"; break;
      default:
        return MakeError(ErrorKind::kNotSupported,
                         fmt::format("searching {} parameters ('{}') is not supported yet",
                                     fhir::SearchParamTypeCode(p.type), c.name));
    }
    const std::string exists = "EXISTS (SELECT 1 FROM " + table + " i WHERE i.res_type = " + r + ".res_type AND i.res_id = " +
                               r + ".res_id AND i.param = " + sql_.Param(p.code);
    if (c.modifier == "missing") return (c.values[0].text == "true" ? "NOT " : "") + exists + ")";
    std::vector<std::string> ors;
    for (const auto& v : c.values) {
      auto cond = Value(p.type, c.modifier, v);
      if (!cond) return std::move(cond.error());
      ors.push_back(*cond);
    }
    std::string any;
    for (std::size_t i = 0; i < ors.size(); ++i) any += (i ? " OR " : "") + ors[i];
    if (c.modifier == "not") return "NOT " + exists + " AND (" + any + "))";
    return exists + " AND (" + any + "))";
  }

  fhir::Result<std::string> Value(SearchParamType type, const std::string& modifier, const fhir::SearchValue& v) {
    switch (type) {
      case SearchParamType::kToken: {
        if (modifier == "text")
          return "i.display ILIKE " + sql_.Param(LikeEscape(v.text) + "%");
        if (!v.has_separator) return "i.code = " + sql_.Param(v.parts[0]);
        const std::string& system = v.parts[0];
        const std::string& code = v.parts[1];
        if (code.empty()) return "i.system = " + sql_.Param(system);
        return "(i.code = " + sql_.Param(code) + " AND i.system = " + sql_.Param(system) + ")";
      }
      case SearchParamType::kUri:
        if (modifier == "below") return "i.value LIKE " + sql_.Param(LikeEscape(v.text) + "%");
        if (modifier == "above") return sql_.Param(v.text) + " LIKE (replace(replace(replace(i.value, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')";
        return "i.value = " + sql_.Param(v.text);
      case SearchParamType::kString:
        if (modifier == "exact") return "i.value_exact = " + sql_.Param(v.text);
        if (modifier == "contains")
          return "i.value_norm LIKE " + sql_.Param("%" + LikeEscape(fhir::NormalizeForSearch(v.text)) + "%");
        return "i.value_norm LIKE " + sql_.Param(LikeEscape(fhir::NormalizeForSearch(v.text)) + "%");
      case SearchParamType::kReference: {
        const std::string& t = v.text;
        if (t.find("://") != std::string::npos) return "i.url = " + sql_.Param(t);
        auto slash = t.find('/');
        std::string cond;
        if (slash != std::string::npos) {
          cond = "(i.target_type = " + sql_.Param(t.substr(0, slash)) + " AND i.target_id = " +
                 sql_.Param(t.substr(slash + 1)) + ")";
        } else {
          cond = "i.target_id = " + sql_.Param(t);
          if (!modifier.empty()) cond = "(" + cond + " AND i.target_type = " + sql_.Param(modifier) + ")";
        }
        return cond;
      }
      case SearchParamType::kDate: {
        auto range = fhir::ParseDateTimeRange(v.text);
        if (!range) return MakeError(ErrorKind::kInvalid, "'" + v.text + "' is not a date");
        return DateCondition(sql_, v.prefix, "i.low", "i.high", *range);
      }
      case SearchParamType::kNumber:
        return NumberCondition(v.prefix, v.text);
      case SearchParamType::kQuantity: {
        auto cond = NumberCondition(v.prefix, v.parts[0]);
        if (!cond) return cond;
        std::string out = "(" + *cond;
        const std::string system = v.parts.size() > 1 ? v.parts[1] : "";
        const std::string code = v.parts.size() > 2 ? v.parts[2] : "";
        if (!code.empty()) {
          if (system.empty()) out += " AND (i.code = " + sql_.Param(code) + " OR i.unit = " + sql_.Param(code) + ")";
          else out += " AND i.code = " + sql_.Param(code) + " AND i.system = " + sql_.Param(system);
        }
        return out + ")";
      }
      default:
        return MakeError(ErrorKind::kNotSupported, "this parameter type is not supported yet");
    }
  }

  // A number compared with the indexed value: eq means within the range the
  // search value's precision implies (100 matches [99.5, 100.5)); ap is 10%.
  fhir::Result<std::string> NumberCondition(Prefix prefix, const std::string& text) {
    std::string low, high;
    if (!fhir::DecimalRange(text, low, high)) return MakeError(ErrorKind::kInvalid, "'" + text + "' is not a number");
    auto eq = [&] { return "(i.value >= " + sql_.Param(low) + "::numeric AND i.value < " + sql_.Param(high) + "::numeric)"; };
    auto value = [&] { return sql_.Param(text) + "::numeric"; };
    switch (prefix) {
      case Prefix::kEq: return eq();
      case Prefix::kNe: return "NOT " + eq();
      case Prefix::kGt:
      case Prefix::kSa: return "i.value > " + value();
      case Prefix::kLt:
      case Prefix::kEb: return "i.value < " + value();
      case Prefix::kGe: return "i.value >= " + value();
      case Prefix::kLe: return "i.value <= " + value();
      case Prefix::kAp: {
        const std::string v = value();
        return "(i.value BETWEEN " + v + " - abs(" + v + ") * 0.1 AND " + v + " + abs(" + v + ") * 0.1)";
      }
    }
    return eq();
  }

  fhir::Result<std::string> Ids(const fhir::SearchCriterion& c, const std::string& r) {
    std::vector<std::string> ids;
    for (const auto& v : c.values) ids.push_back(v.text);
    const std::string any = TextArray(ids);
    if (c.modifier == "missing") return std::string(c.values[0].text == "true" ? "false" : "true");
    std::string cond = r + ".res_id = ANY(" + sql_.Param(any) + "::text[])";
    return c.modifier == "not" ? "NOT " + cond : cond;
  }

  fhir::Result<std::string> LastUpdated(const fhir::SearchCriterion& c, const std::string& r) {
    if (c.modifier == "missing") return std::string(c.values[0].text == "true" ? "false" : "true");
    std::string any;
    for (const auto& v : c.values) {
      auto range = fhir::ParseDateTimeRange(v.text);
      if (!range) return MakeError(ErrorKind::kInvalid, "'" + v.text + "' is not a date");
      // the last update is an instant of millisecond precision
      const std::string vl = r + ".last_updated";
      const std::string vh = "(" + r + ".last_updated + interval '1 millisecond')";
      any += (any.empty() ? "" : " OR ") + DateCondition(sql_, v.prefix, vl, vh, *range);
    }
    return "(" + any + ")";
  }

  SqlBuilder& sql_;
  int aliases_ = 0;
};

fhir::VersionRecord RecordFromRow(const pqxx::row& row) {
  fhir::VersionRecord rec{row[0].c_str(), row[1].c_str(), row[2].as<int64_t>(), row[3].as<int64_t>(),
                          fhir::WriteMethod::kUpdate, false, {}};
  rec.content.assign(row[4].c_str(), row[4].size());
  return rec;
}

constexpr const char* kRecordColumns =
    "t.res_type, t.res_id, t.version_id, (extract(epoch from t.last_updated) * 1000)::bigint, t.content::text";

// Adds the resources that `specs` reach from `from` to `page.included`
// (skipping those already in the page); returns the newly added ones.
std::vector<fhir::VersionRecord> Include(pqxx::transaction_base& tx, const std::vector<fhir::IncludeSpec>& specs,
                                         bool reverse, bool iterate_only, const std::vector<fhir::VersionRecord>& from,
                                         std::set<std::pair<std::string, std::string>>& seen, SearchPage& page) {
  std::vector<fhir::VersionRecord> added;
  for (const auto& spec : specs) {
    if (iterate_only && !spec.iterate) continue;
    // the resources of `from` this spec starts from
    std::map<std::string, std::vector<std::string>> ids_by_type;
    for (const auto& rec : from)
      if (reverse || spec.wildcard || rec.type == spec.source_type) ids_by_type[rec.type].push_back(rec.id);
    for (const auto& [type, ids] : ids_by_type) {
      SqlBuilder sql;
      std::string text;
      if (!reverse) {
        text = std::string("SELECT ") + kRecordColumns +
               " FROM search_reference ref JOIN resource t ON t.res_type = ref.target_type AND t.res_id = ref.target_id"
               " AND NOT t.deleted WHERE ref.res_type = " + sql.Param(type) + " AND ref.res_id = ANY(" +
               sql.Param(TextArray(ids)) + "::text[])";
        if (spec.param != nullptr) text += " AND ref.param = " + sql.Param(spec.param->code);
      } else {
        if (spec.source_type.empty()) continue;
        text = std::string("SELECT ") + kRecordColumns +
               " FROM search_reference ref JOIN resource t ON t.res_type = ref.res_type AND t.res_id = ref.res_id"
               " AND NOT t.deleted WHERE ref.res_type = " + sql.Param(spec.source_type) + " AND ref.target_type = " +
               sql.Param(type) + " AND ref.target_id = ANY(" + sql.Param(TextArray(ids)) + "::text[])";
        if (spec.param != nullptr) text += " AND ref.param = " + sql.Param(spec.param->code);
      }
      if (!spec.target_type.empty()) text += " AND " + std::string(reverse ? "ref.target_type" : "t.res_type") + " = " + sql.Param(spec.target_type);
      text += " LIMIT 10000";
      auto rows = tx.exec_params(text, pqxx::prepare::make_dynamic_params(sql.params()));
      for (const auto& row : rows) {
        auto rec = RecordFromRow(row);
        if (!seen.insert({rec.type, rec.id}).second) continue;
        added.push_back(rec);
        page.included.push_back(std::move(rec));
      }
    }
  }
  return added;
}

}  // namespace

fhir::Result<SearchPage> RunSearch(pqxx::connection& conn, const fhir::SearchQuery& q) {
  pqxx::nontransaction tx(conn);
  return RunSearchIn(tx, q);
}

fhir::Result<SearchPage> RunSearchIn(pqxx::transaction_base& tx, const fhir::SearchQuery& q) {
  SqlBuilder sql;
  Translator tr(sql);
  std::string where = "r.res_type = " + sql.Param(q.resource_type) + " AND NOT r.deleted";
  for (const auto& c : q.criteria) {
    auto cond = tr.Criterion(c, "r");
    if (!cond) return std::move(cond.error());
    where += " AND " + *cond;
  }
  // Order: by id (default) or last update, both unique with the id as
  // tie-breaker and paged by keyset; or by search parameters (their lowest
  // indexed value ascending, highest descending; missing values last), paged
  // by position.
  bool by_updated = false, descending = false, by_params = false;
  std::string param_order;
  for (std::size_t k = 0; k < q.sort.size(); ++k) {
    const auto& key = q.sort[k];
    if (key.code == "_lastUpdated" || key.code == "_id") {
      if (k == 0) {
        by_updated = key.code == "_lastUpdated";
        descending = key.descending;
      }
      param_order += fmt::format("{}r.{}{}", param_order.empty() ? "" : ", ",
                                 key.code == "_id" ? "res_id" : "last_updated", key.descending ? " DESC" : "");
      continue;
    }
    by_params = true;
    const char* table = nullptr;
    const char* column = "value";
    switch (key.param->type) {
      case SearchParamType::kString: table = "search_string"; column = "value_norm"; break;
      case SearchParamType::kToken: table = "search_token"; column = "code"; break;
      case SearchParamType::kDate: table = "search_date"; column = key.descending ? "high" : "low"; break;
      case SearchParamType::kNumber: table = "search_number"; break;
      case SearchParamType::kQuantity: table = "search_quantity"; break;
      case SearchParamType::kReference: table = "search_reference"; column = "target_id"; break;
      case SearchParamType::kUri: table = "search_uri"; break;
      default: return MakeError(ErrorKind::kNotSupported, fmt::format("sorting by '{}' is not supported", key.code));
    }
    param_order += fmt::format("{}(SELECT {}(s.{}) FROM {} s WHERE s.res_type = r.res_type AND s.res_id = r.res_id"
                               " AND s.param = {}){} NULLS LAST",
                               param_order.empty() ? "" : ", ", key.descending ? "max" : "min", column, table,
                               sql.Param(key.param->code), key.descending ? " DESC" : "");
  }
  SearchPage page;
  if (q.total != fhir::TotalMode::kNone || q.summary == fhir::SummaryMode::kCount) {
    auto r = tx.exec_params("SELECT count(*) FROM resource r WHERE " + where,
                            pqxx::prepare::make_dynamic_params(sql.params()));
    page.total = r[0][0].as<int64_t>();
    if (q.summary == fhir::SummaryMode::kCount) return page;
  }
  std::string keyset = where;
  const char* cmp = descending ? "<" : ">";
  long position = q.offset.value_or(0);
  if (by_params && q.cursor) {
    if (q.cursor->rfind("o:", 0) != 0 || q.cursor->size() < 3 ||
        q.cursor->find_first_not_of("0123456789", 2) != std::string::npos)
      return MakeError(ErrorKind::kInvalid, "_cursor does not fit this search");
    position = std::stol(q.cursor->substr(2));
  } else if (q.cursor) {
    if (by_updated) {
      auto colon = q.cursor->find(':');
      if (colon == std::string::npos) return MakeError(ErrorKind::kInvalid, "_cursor does not fit this search");
      keyset += fmt::format(" AND (r.last_updated, r.res_id) {} ({}, {})", cmp,
                            EDS_TS_SQL(sql.Param(q.cursor->substr(0, colon))), sql.Param(q.cursor->substr(colon + 1)));
    } else {
      keyset += fmt::format(" AND r.res_id {} {}", cmp, sql.Param(*q.cursor));
    }
  }
  const char* dir = descending ? " DESC" : "";
  std::string order = by_params   ? param_order + ", r.res_id"
                      : by_updated ? fmt::format("r.last_updated{0}, r.res_id{0}", dir)
                                   : fmt::format("r.res_id{}", dir);
  const int count = q.count.value_or(50);
  std::string text = "SELECT r.res_id, r.version_id, (extract(epoch from r.last_updated) * 1000)::bigint, r.content::text"
                     " FROM resource r WHERE " + keyset + " ORDER BY " + order + " LIMIT " + sql.Param(std::to_string(count + 1));
  if (by_params ? position > 0 : (q.offset && !q.cursor)) text += " OFFSET " + sql.Param(std::to_string(position));
  auto rows = tx.exec_params(text, pqxx::prepare::make_dynamic_params(sql.params()));
  const std::size_t n = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < n; ++i) {
    const auto& row = rows[static_cast<pqxx::result::size_type>(i)];
    fhir::VersionRecord rec{q.resource_type, row[0].c_str(), row[1].as<int64_t>(), row[2].as<int64_t>(),
                            fhir::WriteMethod::kUpdate, false, {}};
    rec.content.assign(row[3].c_str(), row[3].size());
    page.matches.push_back(std::move(rec));
  }
  if (!page.matches.empty() && (!q.includes.empty() || !q.revincludes.empty())) {
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& m : page.matches) seen.insert({m.type, m.id});
    auto added = Include(tx, q.includes, false, false, page.matches, seen, page);
    auto rev = Include(tx, q.revincludes, true, false, page.matches, seen, page);
    added.insert(added.end(), rev.begin(), rev.end());
    // :iterate applies again to what was included, a few rounds at most
    for (int round = 0; round < 3 && !added.empty(); ++round) {
      auto next = Include(tx, q.includes, false, true, added, seen, page);
      auto next_rev = Include(tx, q.revincludes, true, true, added, seen, page);
      next.insert(next.end(), next_rev.begin(), next_rev.end());
      added = std::move(next);
    }
  }
  if (rows.size() > n && n > 0) {
    const auto& last = page.matches.back();
    page.next_cursor = by_params    ? fmt::format("o:{}", position + count)
                       : by_updated ? fmt::format("{}:{}", last.last_updated_ms, last.id)
                                    : last.id;
  }
  return page;
}

}  // namespace eds::storage
