// Search on PostgreSQL: a SearchQuery becomes one SELECT over the current
// resources, each criterion an EXISTS over the typed index tables, every
// value a bound parameter; pages are cut with a keyset cursor.
#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "fhir/primitives.hpp"
#include "fhir/search_index.hpp"
#include "fhir/search_query.hpp"
#include "storage/pg_resource_store.hpp"
#include "storage/pg_search.hpp"
#include "storage/pg_statement_cache.hpp"

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

// The index rows `a` of the resource (or index row) `r`: by its key and id
// (the (res_key, res_id) index, migration 0016), and its type (which lets a
// value index serve instead when the criterion's values are rarer).
std::string Owner(const std::string& a, const std::string& r) {
  return a + ".res_key = " + r + ".res_key AND " + a + ".res_type = " + r + ".res_type AND " + a + ".res_id = " + r +
         ".res_id";
}

// `a`.param naming the rows of parameter `code` (+ `suffix`), those of the
// parameters whose rows it shares (SearchParameterRegistry::SharedRowsOf)
// and, without a suffix, the reference rows of others it shares
// (SharedReferencesOf), each only with its target type and resource types.
std::string RowsOf(SqlBuilder& sql, const std::string& a, const std::string& code,
                   const std::vector<std::string>& shared, const std::vector<fhir::SharedReferenceRows>& refs,
                   const std::string& suffix) {
  std::vector<std::string> codes{code + suffix};
  for (const auto& s : shared) codes.push_back(s + suffix);
  bool limited = false;
  if (suffix.empty())
    for (const auto& r : refs) {
      if (std::find(codes.begin(), codes.end(), r.code) == codes.end()) codes.push_back(r.code);
      limited = limited || !r.target_type.empty() || !r.resource_types.empty();
    }
  if (codes.size() == 1) return a + ".param = " + sql.Param(codes[0]);
  std::string out = a + ".param = ANY(" + sql.Param(TextArray(codes)) + "::text[])";
  if (!limited) return out;
  // a reference parameter shares no rows of the SharedRowsOf kind
  std::string alts = a + ".param = " + sql.Param(code);
  for (const auto& r : refs) {
    alts += " OR (" + a + ".param = " + sql.Param(r.code);
    if (!r.target_type.empty()) alts += " AND " + a + ".target_type = " + sql.Param(r.target_type);
    if (!r.resource_types.empty())
      alts += " AND " + a + ".res_type = ANY(" + sql.Param(TextArray(r.resource_types)) + "::text[])";
    alts += ")";
  }
  return out + " AND (" + alts + ")";
}

std::string RowsOf(SqlBuilder& sql, const std::string& a, const std::string& code,
                   const std::vector<fhir::SharedReferenceRows>& refs) {
  return RowsOf(sql, a, code, {}, refs, "");
}

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
    type_hint_.clear();
    return Linked(c, r, 0, 0);
  }

  // True when `c` can drive the search: a plain positive criterion on the
  // searched type whose index rows name the candidates (index rows exist
  // for current resources only).
  static bool CanDrive(const fhir::SearchCriterion& c) {
    return c.chain.empty() && c.reverse.empty() && PositiveIndexCriterion(c);
  }

  // True when `c`'s parameter itself is matched by the presence of index
  // rows (no :missing, :not or ne, a parameter with index rows of its own).
  static bool PositiveIndexCriterion(const fhir::SearchCriterion& c) {
    if (c.param == nullptr) return false;
    const auto& p = *c.param;
    if (p.code == "_id" || p.code == "_lastUpdated" || p.type == SearchParamType::kComposite) return false;
    if (TableOf(p.type) == nullptr) return false;
    if (c.modifier == "missing" || c.modifier == "not" || c.modifier == "above") return false;
    for (const auto& v : c.values)
      if (v.prefix == Prefix::kNe) return false;
    return true;
  }

  // The ids of the resources of `type` that `c` matches, distinct, read from
  // its index table alone.
  fhir::Result<std::string> Driver(const fhir::SearchCriterion& c, const std::string& type) {
    SearchParamType t = c.param->type;
    std::string suffix;
    if (c.modifier == "identifier" || c.modifier == "of-type") {
      t = SearchParamType::kToken;
      suffix = ":" + c.modifier;
    }
    std::string any;
    for (const auto& v : c.values) {
      auto cond = Value(t, c.modifier, v, "d");
      if (!cond) return cond;
      any += (any.empty() ? "" : " OR ") + *cond;
    }
    return "SELECT DISTINCT d.res_type, d.res_id, d.res_key FROM " + std::string(TableOf(t)) +
           " d WHERE d.res_type = " +
           sql_.Param(type) + " AND " + RowsOf(sql_, "d", c.param->code, c.shared_rows, c.shared_references, suffix) +
           " AND (" + any + ")";
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
             ".res_key = " + ref + ".res_key AND " + res + ".res_type = " + ref + ".res_type AND " + res +
             ".res_id = " + ref + ".res_id AND NOT " + res +
             ".deleted WHERE " + ref + ".res_type = " + sql_.Param(link.resource_type) + " AND " +
             RowsOf(sql_, ref, link.param->code, link.shared_references) + " AND " + ref + ".target_type = " + r +
             ".res_type AND " +
             ref + ".target_id = " + r + ".res_id AND " + *inner + ")";
    }
    if (chain + 1 == c.chain.size() && reverse == c.reverse.size() && PositiveIndexCriterion(c)) {
      // the last link to a positive criterion: index rows exist for current
      // resources only, so the target's rows are looked up from the
      // reference row itself, without joining the target resource
      const auto& link = c.chain[chain];
      const std::string ref = Alias("cr");
      type_hint_ = link.target_types.empty() ? std::string()
                                             : "ANY(" + sql_.Param(TextArray(link.target_types)) + "::text[])";
      direct_columns_ = {ref + ".target_type", ref + ".target_id"};
      auto inner = Direct(c, "");
      direct_columns_.reset();
      if (!inner) return inner;
      return "EXISTS (SELECT 1 FROM search_reference " + ref + " WHERE " + Owner(ref, r) + " AND " +
             RowsOf(sql_, ref, link.param->code, link.shared_references) + " AND " + ref +
             (link.target_types.empty() ? ".target_type = " + sql_.Param(link.target_type)
                                        : ".target_type = ANY(" + sql_.Param(TextArray(link.target_types)) + "::text[])") +
             " AND " + *inner + ")";
    }
    if (chain < c.chain.size()) {
      const auto& link = c.chain[chain];
      const std::string ref = Alias("cr"), res = Alias("t");
      // several target types: the next index lookups are told them, so that
      // they can use their (res_type, ...) indexes
      type_hint_ = link.target_types.empty() ? std::string()
                                             : "ANY(" + sql_.Param(TextArray(link.target_types)) + "::text[])";
      auto inner = Linked(c, res, reverse, chain + 1);
      if (!inner) return inner;
      return "EXISTS (SELECT 1 FROM search_reference " + ref + " JOIN resource " + res + " ON " + res +
             ".res_type = " + ref + ".target_type AND " + res + ".res_id = " + ref + ".target_id AND NOT " + res +
             ".deleted WHERE " + Owner(ref, r) + " AND " +
             RowsOf(sql_, ref, link.param->code, link.shared_references) + " AND " + ref +
             (link.target_types.empty() ? ".target_type = " + sql_.Param(link.target_type)
                                        : ".target_type = ANY(" + sql_.Param(TextArray(link.target_types)) + "::text[])") +
             " AND " + *inner + ")";
    }
    return Direct(c, r);
  }

  std::string Alias(const char* stem) { return stem + std::to_string(++aliases_); }

  static const char* TableOf(SearchParamType t) {
    switch (t) {
      case SearchParamType::kToken: return "search_token";
      case SearchParamType::kUri: return "search_uri";
      case SearchParamType::kDate: return "search_date";
      case SearchParamType::kString: return "search_string";
      case SearchParamType::kNumber: return "search_number";
      case SearchParamType::kQuantity: return "search_quantity";
      case SearchParamType::kReference: return "search_reference";
      default: return nullptr;
    }
  }

  fhir::Result<std::string> Direct(const fhir::SearchCriterion& c, const std::string& r) {
    const auto& p = *c.param;
    if (p.code == "_id") return Ids(c, r);
    if (p.code == "_lastUpdated") return LastUpdated(c, r);
    if (p.type == SearchParamType::kComposite) return Composite(c, r);
    // :identifier and :of-type have token rows of their own (see search_index.hpp)
    SearchParamType type = p.type;
    std::string suffix;
    if (c.modifier == "identifier" || c.modifier == "of-type") {
      type = SearchParamType::kToken;
      suffix = ":" + c.modifier;
    }
    const char* table = TableOf(type);
    if (table == nullptr)
      return MakeError(ErrorKind::kNotSupported, fmt::format("searching {} parameters ('{}') is not supported yet",
                                                             fhir::SearchParamTypeCode(p.type), c.name));
    const std::string a = Alias("i");
    const std::string rt = direct_columns_ ? direct_columns_->first : r + ".res_type";
    const std::string ri = direct_columns_ ? direct_columns_->second : r + ".res_id";
    // a reference row names its target by type and id only (its rows are
    // then found by value)
    const std::string owner =
        direct_columns_ ? a + ".res_type = " + rt + " AND " + a + ".res_id = " + ri : Owner(a, r);
    std::string exists = "EXISTS (SELECT 1 FROM " + std::string(table) + " " + a + " WHERE " + owner + " AND " +
                         RowsOf(sql_, a, p.code, c.shared_rows, c.shared_references, suffix);
    if (!type_hint_.empty()) exists += " AND " + a + ".res_type = " + std::exchange(type_hint_, {});
    if (c.modifier == "missing") return (c.values[0].text == "true" ? "NOT " : "") + exists + ")";
    std::vector<std::string> ors;
    for (const auto& v : c.values) {
      auto cond = Value(type, c.modifier, v, a);
      if (!cond) return std::move(cond.error());
      ors.push_back(*cond);
    }
    std::string any;
    for (std::size_t i = 0; i < ors.size(); ++i) any += (i ? " OR " : "") + ors[i];
    if (c.modifier == "not") return "NOT " + exists + " AND (" + any + "))";
    return exists + " AND (" + any + "))";
  }

  // A composite: rows of every component under "code$k" sharing a group.
  fhir::Result<std::string> Composite(const fhir::SearchCriterion& c, const std::string& r) {
    const auto& p = *c.param;
    if (c.components.empty() || c.components.size() != p.components.size())
      return MakeError(ErrorKind::kNotSupported, fmt::format("'{}' has components this server cannot search", c.name));
    auto one = [&](const fhir::SearchValue* v) -> fhir::Result<std::string> {
      std::string from, where;
      std::string first;
      for (std::size_t k = 0; k < c.components.size(); ++k) {
        const char* table = TableOf(c.components[k]->type);
        if (table == nullptr) return MakeError(ErrorKind::kNotSupported, "unsupported composite component");
        const std::string a = Alias("k");
        // the rows of one group all come from one composite (group numbers
        // are unique within a resource), also when the rows are shared;
        // rows of plain parameters (RootComponentsOf) are all group 0
        const std::string param =
            k < c.component_rows.size() && c.component_rows[k].size() > 1
                ? a + ".param = ANY(" + sql_.Param(TextArray(c.component_rows[k])) + "::text[])"
                : a + ".param = " + sql_.Param(p.code + "$" + std::to_string(k));
        if (k == 0) {
          first = a;
          from = std::string(table) + " " + a;
          where = Owner(a, r) + " AND " + param;
        } else {
          from += " JOIN " + std::string(table) + " " + a + " ON " + Owner(a, first) + " AND " + a + ".grp = " + first +
                  ".grp AND " + param;
        }
        if (v != nullptr) {
          auto cond = Value(c.components[k]->type, "", v->components[k], a);
          if (!cond) return cond;
          where += " AND " + *cond;
        }
      }
      return "EXISTS (SELECT 1 FROM " + from + " WHERE " + where + ")";
    };
    if (c.modifier == "missing") {
      auto e = one(nullptr);
      if (!e) return e;
      return (c.values[0].text == "true" ? "NOT " : "") + *e;
    }
    std::string any;
    for (const auto& v : c.values) {
      auto e = one(&v);
      if (!e) return e;
      any += (any.empty() ? "" : " OR ") + *e;
    }
    return "(" + any + ")";
  }

  // The condition one value puts on an index row aliased `a`.
  fhir::Result<std::string> Value(SearchParamType type, const std::string& modifier, const fhir::SearchValue& v,
                                  const std::string& a) {
    switch (type) {
      case SearchParamType::kToken: {
        if (modifier == "text") return a + ".display ILIKE " + sql_.Param(LikeEscape(v.text) + "%");
        if (modifier == "of-type")
          return "(" + a + ".system = " + sql_.Param(v.parts[0]) + " AND " + a + ".code = " + sql_.Param(v.parts[1]) +
                 " AND " + a + ".display = " + sql_.Param(v.parts[2]) + ")";
        if (!v.has_separator) return a + ".code = " + sql_.Param(v.parts[0]);
        const std::string& system = v.parts[0];
        const std::string& code = v.parts[1];
        if (code.empty()) return a + ".system = " + sql_.Param(system);
        return "(" + a + ".code = " + sql_.Param(code) + " AND " + a + ".system = " + sql_.Param(system) + ")";
      }
      case SearchParamType::kUri:
        if (modifier == "below") return a + ".value LIKE " + sql_.Param(LikeEscape(v.text) + "%");
        if (modifier == "above")
          return sql_.Param(v.text) + " LIKE (replace(replace(replace(" + a +
                 ".value, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')";
        return a + ".value = " + sql_.Param(v.text);
      case SearchParamType::kString:
        if (modifier == "exact") return a + ".value_exact = " + sql_.Param(v.text);
        if (modifier == "contains")
          return a + ".value_norm LIKE " + sql_.Param("%" + LikeEscape(fhir::NormalizeForSearch(v.text)) + "%");
        return a + ".value_norm LIKE " + sql_.Param(LikeEscape(fhir::NormalizeForSearch(v.text)) + "%");
      case SearchParamType::kReference: {
        std::string t = v.text;
        if (t.find("://") != std::string::npos) return a + ".url = " + sql_.Param(t);
        // a version-specific value ([Type/]id/_history/v) matches the
        // references to that version of the resource
        std::optional<std::string> version;
        if (auto hist = t.find("/_history/"); hist != std::string::npos) {
          version = t.substr(hist + 10);
          t.resize(hist);
        }
        auto slash = t.find('/');
        std::string cond;
        if (slash != std::string::npos) {
          cond = "(" + a + ".target_type = " + sql_.Param(t.substr(0, slash)) + " AND " + a +
                 ".target_id = " + sql_.Param(t.substr(slash + 1)) + ")";
        } else {
          cond = a + ".target_id = " + sql_.Param(t);
          if (!modifier.empty()) cond = "(" + cond + " AND " + a + ".target_type = " + sql_.Param(modifier) + ")";
        }
        if (version) cond = "(" + cond + " AND " + a + ".target_version = " + sql_.Param(*version) + ")";
        if (!v.url.empty()) cond = "(" + cond + " OR " + a + ".url = " + sql_.Param(v.url) + ")";
        return cond;
      }
      case SearchParamType::kDate: {
        auto range = fhir::ParseDateTimeRange(v.text);
        if (!range) return MakeError(ErrorKind::kInvalid, "'" + v.text + "' is not a date");
        return DateCondition(sql_, v.prefix, a + ".low", a + ".high", *range);
      }
      case SearchParamType::kNumber:
        return NumberCondition(v.prefix, v.text, a);
      case SearchParamType::kQuantity: {
        auto cond = NumberCondition(v.prefix, v.parts[0], a);
        if (!cond) return cond;
        std::string out = "(" + *cond;
        const std::string system = v.parts.size() > 1 ? v.parts[1] : "";
        const std::string code = v.parts.size() > 2 ? v.parts[2] : "";
        if (!code.empty()) {
          if (system.empty())
            out += " AND (" + a + ".code = " + sql_.Param(code) + " OR " + a + ".unit = " + sql_.Param(code) + ")";
          else
            out += " AND " + a + ".code = " + sql_.Param(code) + " AND " + a + ".system = " + sql_.Param(system);
        }
        return out + ")";
      }
      default:
        return MakeError(ErrorKind::kNotSupported, "this parameter type is not supported yet");
    }
  }

  // A number compared with the indexed value: eq means within the range the
  // search value's precision implies (100 matches [99.5, 100.5)); ap is 10%.
  fhir::Result<std::string> NumberCondition(Prefix prefix, const std::string& text, const std::string& a) {
    std::string low, high;
    if (!fhir::DecimalRange(text, low, high)) return MakeError(ErrorKind::kInvalid, "'" + text + "' is not a number");
    const std::string col = a + ".value";
    auto eq = [&] {
      return "(" + col + " >= " + sql_.Param(low) + "::numeric AND " + col + " < " + sql_.Param(high) + "::numeric)";
    };
    auto value = [&] { return sql_.Param(text) + "::numeric"; };
    switch (prefix) {
      case Prefix::kEq: return eq();
      case Prefix::kNe: return "NOT " + eq();
      case Prefix::kGt:
      case Prefix::kSa: return col + " > " + value();
      case Prefix::kLt:
      case Prefix::kEb: return col + " < " + value();
      case Prefix::kGe: return col + " >= " + value();
      case Prefix::kLe: return col + " <= " + value();
      case Prefix::kAp: {
        const std::string v = value();
        return "(" + col + " BETWEEN " + v + " - abs(" + v + ") * 0.1 AND " + v + " + abs(" + v + ") * 0.1)";
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
  std::string type_hint_;  // see Linked
  // Direct: the columns naming the resource when it is not joined (see Linked)
  std::optional<std::pair<std::string, std::string>> direct_columns_;
};

// A record from columns type, id, version, last update (ms), content.
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
               " FROM resource s JOIN search_reference ref ON ref.res_key = s.res_key AND ref.res_type = s.res_type"
               " AND ref.res_id = s.res_id JOIN resource t ON t.res_type = ref.target_type AND t.res_id = ref.target_id"
               " AND NOT t.deleted WHERE s.res_type = " + sql.Param(type) + " AND s.res_id = ANY(" +
               sql.Param(TextArray(ids)) + "::text[])";
        if (spec.param != nullptr) text += " AND " + RowsOf(sql, "ref", spec.param->code, spec.shared_references);
      } else {
        if (spec.source_type.empty()) continue;
        text = std::string("SELECT ") + kRecordColumns +
               " FROM search_reference ref JOIN resource t ON t.res_key = ref.res_key AND t.res_type = ref.res_type"
               " AND t.res_id = ref.res_id"
               " AND NOT t.deleted WHERE ref.res_type = " + sql.Param(spec.source_type) + " AND ref.target_type = " +
               sql.Param(type) + " AND ref.target_id = ANY(" + sql.Param(TextArray(ids)) + "::text[])";
        if (spec.param != nullptr) text += " AND " + RowsOf(sql, "ref", spec.param->code, spec.shared_references);
        else text += " AND ref.param = ANY(" + sql.Param(TextArray(spec.wildcard_params)) + "::text[])";
      }
      if (!spec.target_type.empty()) text += " AND " + std::string(reverse ? "ref.target_type" : "t.res_type") + " = " + sql.Param(spec.target_type);
      text += " LIMIT 10000";
      auto rows = ExecPrepared(tx, text, sql.params(), PlanMode::kGeneric);
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

namespace {

// One key of a result order: an expression over the inner query `s`, the
// SQL type its text form casts back to, its direction, and whether it can
// be NULL (sorting by a parameter a resource has no value for: last).
struct OrderKey {
  std::string expr;
  const char* cast;
  bool desc;
  bool nullable;
};

std::string Hex(std::string_view s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view s) {
  if (s.size() % 2) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    int hi = digit(s[i]), lo = digit(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

// A cursor: 'n' (after the row) or 'p' (before it), then the row's key
// values, each ".-" (null) or ".v" + hex.
std::string EncodeCursor(char dir, const std::vector<std::optional<std::string>>& values) {
  std::string out(1, dir);
  for (const auto& v : values) out += v ? ".v" + Hex(*v) : std::string(".-");
  return out;
}

bool DecodeCursor(const std::string& text, std::size_t keys, bool& backward,
                  std::vector<std::optional<std::string>>& values) {
  if (text.empty() || (text[0] != 'n' && text[0] != 'p')) return false;
  backward = text[0] == 'p';
  std::size_t pos = 1;
  while (pos < text.size()) {
    if (text[pos] != '.') return false;
    std::size_t next = text.find('.', pos + 1);
    std::string_view part = std::string_view(text).substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    if (part == "-") {
      values.emplace_back(std::nullopt);
    } else if (!part.empty() && part[0] == 'v') {
      auto v = Unhex(part.substr(1));
      if (!v) return false;
      values.emplace_back(std::move(*v));
    } else {
      return false;
    }
    pos = next == std::string::npos ? text.size() : next;
  }
  return values.size() == keys;
}

// Rows strictly after `values` in the order of `keys` (directions already
// reversed when paging backward, where NULLs come first).
std::string AfterCondition(SqlBuilder& sql, const std::vector<OrderKey>& keys,
                           const std::vector<std::optional<std::string>>& values, bool nulls_first) {
  bool simple = std::none_of(keys.begin(), keys.end(), [](const OrderKey& k) { return k.nullable; }) &&
                std::all_of(keys.begin(), keys.end(), [&](const OrderKey& k) { return k.desc == keys[0].desc; }) &&
                std::all_of(values.begin(), values.end(), [](const auto& v) { return v.has_value(); });
  std::vector<std::string> bound;
  for (std::size_t i = 0; i < keys.size(); ++i)
    bound.push_back(values[i] ? sql.Param(*values[i]) + "::" + keys[i].cast : "NULL");
  if (simple) {
    std::string l, r;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      l += (i ? ", " : "") + keys[i].expr;
      r += (i ? ", " : "") + bound[i];
    }
    return "(" + l + ") " + (keys[0].desc ? "<" : ">") + " (" + r + ")";
  }
  std::string out, equal_prefix;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& k = keys[i];
    std::string after;
    if (!values[i]) {
      after = nulls_first ? k.expr + " IS NOT NULL" : "false";
    } else {
      std::string cmp = k.expr + (k.desc ? " < " : " > ") + bound[i];
      after = k.nullable && !nulls_first ? "(" + k.expr + " IS NULL OR " + cmp + ")" : cmp;
    }
    out += (out.empty() ? "" : " OR ") + std::string("(") + equal_prefix + after + ")";
    equal_prefix += (values[i] ? k.expr + " = " + bound[i] : k.expr + " IS NULL") + " AND ";
  }
  return "(" + out + ")";
}

// Resources of `type` not yet indexed by the parameter set of `generation`.
int64_t NotReindexed(pqxx::transaction_base& tx, const std::string& type, int64_t generation) {
  auto r = tx.exec_params(
      "SELECT count(*) FROM (SELECT 1 FROM resource WHERE res_type = $1 AND index_gen < $2 AND NOT deleted"
      " LIMIT 1000000) x",
      type, generation);
  return r[0][0].as<int64_t>();
}

void CheckReindexed(pqxx::transaction_base& tx, const fhir::SearchQuery& q, SearchPage& page) {
  std::set<std::pair<std::string, const fhir::SearchParamDef*>> checked;
  auto check = [&](const std::string& type, const fhir::SearchParamDef* p) {
    if (p == nullptr || p->generation == 0 || type.empty() || !checked.insert({type, p}).second) return;
    if (int64_t n = NotReindexed(tx, type, p->generation); n > 0)
      page.warnings.push_back(fmt::format(
          "search parameter '{}' was added after {} {} resource(s) were indexed; they are not searched by it "
          "until a reindex ('eds reindex' or $reindex) reaches them",
          p->code, n, type));
  };
  for (const auto& c : q.criteria) {
    const std::string& type = c.resource_type.empty() ? q.resource_type : c.resource_type;
    check(type, c.param);
    for (const auto& l : c.chain) check(l.resource_type, l.param);
    for (const auto& l : c.reverse) check(l.resource_type, l.param);
  }
  for (const auto& k : q.sort) check(q.resource_type, k.param);
}

// PostgreSQL's row estimate for `where` (EXPLAIN, no execution).
int64_t EstimateRows(pqxx::transaction_base& tx, const std::string& from, const std::string& where,
                     const std::vector<std::string>& params) {
  auto r = tx.exec_params("EXPLAIN SELECT 1 FROM " + from + " WHERE " + where,
                          pqxx::prepare::make_dynamic_params(params));
  if (r.empty()) return 0;
  std::string line = r[0][0].c_str();
  auto pos = line.find(" rows=");
  if (pos == std::string::npos) return 0;
  return std::atoll(line.c_str() + pos + 6);
}

}  // namespace

fhir::Result<std::string> ExplainSearch(pqxx::connection& conn, const fhir::SearchQuery& q) {
  pqxx::nontransaction tx(conn);
  std::string plan;
  auto r = RunSearchIn(tx, q, &plan);
  if (!r) return std::move(r.error());
  return plan;
}

namespace {

fhir::Result<SearchPage> RunSearchImpl(pqxx::transaction_base& tx, const fhir::SearchQuery& q, std::string* plan,
                                       bool allow_walk);

}  // namespace

fhir::Result<SearchPage> RunSearchIn(pqxx::transaction_base& tx, const fhir::SearchQuery& q, std::string* plan) {
  return RunSearchImpl(tx, q, plan, true);
}

namespace {

fhir::Result<SearchPage> RunSearchImpl(pqxx::transaction_base& tx, const fhir::SearchQuery& q, std::string* plan,
                                       bool allow_walk) {
  SqlBuilder sql;
  Translator tr(sql);
  std::string where;
  const bool multi_type = q.resource_type.empty();
  // A plain criterion on the type drives the search from its index rows (the
  // resource table is read only for the page); else all current resources
  // of the type(s) are the candidates.
  const bool needs_updated =
      std::any_of(q.sort.begin(), q.sort.end(), [](const fhir::SortKey& k) { return k.code == "_lastUpdated"; }) ||
      std::any_of(q.criteria.begin(), q.criteria.end(),
                  [](const fhir::SearchCriterion& c) { return c.param != nullptr && c.param->code == "_lastUpdated"; });
  // Sorted by one date parameter, a page is found by walking that
  // parameter's index in order (each resource at its lowest/highest date)
  // and probing the criteria, stopping after a page: the latest 10 of a
  // million take as long as the first 10. Resources without the date come
  // after all dated ones; a page reaching them is run the general way.
  bool walk = allow_walk && !multi_type && !needs_updated && q.sort.size() == 1 && q.sort[0].param != nullptr &&
              q.sort[0].param->type == SearchParamType::kDate && !(q.offset && !q.cursor) &&
              q.total == fhir::TotalMode::kNone && q.summary != fhir::SummaryMode::kCount && !plan;
  if (walk && q.cursor && q.cursor->size() > 2 && q.cursor->compare(1, 2, ".-") == 0) walk = false;
  const char* walk_column = walk && q.sort[0].descending ? "high" : "low";
  std::optional<std::size_t> driver;
  if (!multi_type && !needs_updated && !walk)
    for (std::size_t i = 0; i < q.criteria.size() && !driver; ++i)
      if (Translator::CanDrive(q.criteria[i])) driver = i;
  std::string from = "resource r";
  if (walk) {
    from = "search_date r";
    // one row per resource: the one with its highest (lowest) date, the
    // first by physical position among equal ones
    where = fmt::format(
        "r.res_type = {0} AND r.param = {1} AND r.grp = 0 AND (SELECT NOT EXISTS (SELECT 1 FROM search_date y"
        " WHERE y.res_key = r.res_key AND y.res_type = r.res_type AND y.res_id = r.res_id AND y.param = r.param"
        " AND y.grp = 0"
        " AND (y.{2} {3} r.{2} OR (y.{2} = r.{2} AND y.ctid < r.ctid))))",
        sql.Param(q.resource_type), sql.Param(q.sort[0].param->code), walk_column,
        q.sort[0].descending ? ">" : "<");
  } else if (driver) {
    auto d = tr.Driver(q.criteria[*driver], q.resource_type);
    if (!d) return std::move(d.error());
    from = "(" + *d + ") r";
    // said again outside, so the other criteria's lookups know the type too
    where = "r.res_type = " + sql.Param(q.resource_type);
  } else {
    if (!multi_type) where = "r.res_type = " + sql.Param(q.resource_type);
    else if (!q.types.empty()) where = "r.res_type = ANY(" + sql.Param(TextArray(q.types)) + "::text[])";
    else where = "true";
    where += " AND NOT r.deleted";
  }
  if (q.compartment) {
    std::string any;
    for (const auto& [type, params] : q.compartment->params_by_type) {
      std::vector<std::string> refs;
      for (const auto& p : params)
        if (p != "{def}") refs.push_back(p);
      std::string cond;
      if (!refs.empty())
        cond = "EXISTS (SELECT 1 FROM search_reference cp WHERE " + Owner("cp", "r") +
               " AND cp.param = ANY(" + sql.Param(TextArray(refs)) + "::text[]) AND cp.target_type = " +
               sql.Param(q.compartment->type) + " AND cp.target_id = " + sql.Param(q.compartment->id) + ")";
      if (type == q.compartment->type)  // the compartment's own resource is in it
        cond = (cond.empty() ? "" : cond + " OR ") + "r.res_id = " + sql.Param(q.compartment->id);
      if (cond.empty()) continue;
      any += (any.empty() ? "" : " OR ") + std::string("(r.res_type = ") + sql.Param(type) + " AND (" + cond + "))";
    }
    where += " AND (" + (any.empty() ? std::string("false") : any) + ")";
  }
  for (std::size_t i = 0; i < q.criteria.size(); ++i) {
    if (driver && i == *driver) continue;
    auto cond = tr.Criterion(q.criteria[i], "r");
    if (!cond) return std::move(cond.error());
    // walking: each criterion a probe per walked row (a subplan the planner
    // cannot turn into a join over all matches), so the walk stops early
    where += walk ? " AND (SELECT " + *cond + ")" : " AND " + *cond;
  }
  const std::vector<std::string> where_params = sql.params();  // for counts, which use `where` only
  SearchPage page;
  CheckReindexed(tx, q, page);
  if (q.summary == fhir::SummaryMode::kCount) {
    auto r = tx.exec_params("SELECT count(*) FROM " + from + " WHERE " + where,
                            pqxx::prepare::make_dynamic_params(sql.params()));
    page.total = r[0][0].as<int64_t>();
    return page;
  }

  // The order: the _sort keys, then the id (and type, across types) as
  // tie-breakers, so that every row has a unique position a keyset cursor
  // can point at. Parameter keys are a resource's lowest indexed value
  // ascending, its highest descending; resources without one come last.
  std::vector<OrderKey> keys;
  std::string computed;  // the inner query's extra columns
  bool has_id = false;
  for (std::size_t k = 0; k < q.sort.size(); ++k) {
    const auto& key = q.sort[k];
    if (key.code == "_id") {
      keys.push_back({"s.res_id", "text", key.descending, false});
      has_id = true;
      continue;
    }
    if (key.code == "_lastUpdated") {
      keys.push_back({"s.last_updated", "timestamptz", key.descending, false});
      continue;
    }
    const char* table = nullptr;
    const char* column = "value";
    const char* cast = "text";
    switch (key.param->type) {
      case SearchParamType::kString: table = "search_string"; column = "value_norm"; break;
      case SearchParamType::kToken: table = "search_token"; column = "code"; break;
      case SearchParamType::kDate:
        table = "search_date";
        column = key.descending ? "high" : "low";
        cast = "timestamptz";
        break;
      case SearchParamType::kNumber: table = "search_number"; cast = "numeric"; break;
      case SearchParamType::kQuantity: table = "search_quantity"; cast = "numeric"; break;
      case SearchParamType::kReference: table = "search_reference"; column = "target_id"; break;
      case SearchParamType::kUri: table = "search_uri"; break;
      default: return MakeError(ErrorKind::kNotSupported, fmt::format("sorting by '{}' is not supported", key.code));
    }
    const std::string name = "k" + std::to_string(k);
    if (walk) {  // the walked index row's own value
      computed += fmt::format(", r.{} AS {}", walk_column, name);
      keys.push_back({"s." + name, cast, key.descending, false});
      continue;
    }
    const std::string param = RowsOf(sql, "x", key.param->code, key.shared_rows, key.shared_references, "");
    computed += fmt::format(", (SELECT {}(x.{}) FROM {} x WHERE x.res_key = r.res_key AND x.res_type = r.res_type"
                            " AND x.res_id = r.res_id"
                            " AND {} AND x.grp = 0) AS {}",
                            key.descending ? "max" : "min", column, table, param, name);
    keys.push_back({"s." + name, cast, key.descending, true});
  }
  const bool first_desc = !keys.empty() && keys.front().desc;
  if (!has_id) {
    keys.push_back({"s.res_id", "text", first_desc, false});
    if (multi_type) keys.push_back({"s.res_type", "text", first_desc, false});
  } else if (multi_type) {
    keys.push_back({"s.res_type", "text", first_desc, false});
  }

  bool backward = false;
  std::string keyset;
  if (q.cursor) {
    std::vector<std::optional<std::string>> values;
    if (!DecodeCursor(*q.cursor, keys.size(), backward, values))
      return MakeError(ErrorKind::kInvalid, "_cursor does not fit this search");
    auto effective = keys;
    if (backward)
      for (auto& k : effective) k.desc = !k.desc;
    keyset = " WHERE " + AfterCondition(sql, effective, values, backward);
  }
  std::string order, key_columns;
  for (const auto& k : keys) {
    const bool desc = k.desc != backward;
    order += (order.empty() ? "" : ", ") + k.expr + (desc ? " DESC" : " ASC");
    if (k.nullable) order += backward ? " NULLS FIRST" : " NULLS LAST";
    key_columns += ", (" + k.expr + ")::text";
  }
  const int count = q.count.value_or(50);
  const bool by_offset = q.offset && !q.cursor;
  const long offset = by_offset ? *q.offset : 0;
  // The page is cut on the keys alone; only its rows are then joined to
  // their content (sorting never carries the documents along).
  std::string page_sql = "SELECT s.* FROM (SELECT r.res_type, r.res_id" +
                         std::string(driver || walk ? "" : ", r.last_updated") + computed + " FROM " + from + " WHERE " +
                         where + ") s" + keyset + " ORDER BY " + order + " LIMIT " +
                         sql.Param(std::to_string(count + 1));
  if (offset > 0) page_sql += " OFFSET " + sql.Param(std::to_string(offset));
  std::string text =
      "SELECT r.res_type, r.res_id, r.version_id, (extract(epoch from r.last_updated) * 1000)::bigint, r.content::text" +
      key_columns + " FROM (" + page_sql +
      ") s JOIN resource r ON r.res_type = s.res_type AND r.res_id = s.res_id AND NOT r.deleted ORDER BY " + order;
  if (plan != nullptr) {
    auto lines = tx.exec_params("EXPLAIN " + text, pqxx::prepare::make_dynamic_params(sql.params()));
    for (const auto& line : lines) *plan += std::string(line[0].c_str()) + "\n";
    return page;
  }
  // one criterion (or none): a plan for any of its values is as good as a
  // plan for these; several: which one to start from depends on the values
  auto rows = ExecPrepared(tx, text, sql.params(), q.criteria.size() <= 1 ? PlanMode::kGeneric : PlanMode::kCustom);
  if (walk && rows.size() <= static_cast<std::size_t>(count)) return RunSearchImpl(tx, q, plan, false);
  const std::size_t n = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(count));
  const bool more = rows.size() > n;
  std::vector<std::vector<std::optional<std::string>>> row_keys;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& row = rows[static_cast<pqxx::result::size_type>(i)];
    page.matches.push_back(RecordFromRow(row));
    std::vector<std::optional<std::string>> kv;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto& f = row[static_cast<pqxx::row::size_type>(5 + k)];
      kv.push_back(f.is_null() ? std::nullopt : std::optional<std::string>(f.c_str()));
    }
    row_keys.push_back(std::move(kv));
  }
  if (backward) {
    std::reverse(page.matches.begin(), page.matches.end());
    std::reverse(row_keys.begin(), row_keys.end());
  }
  if (by_offset) {
    if (more) page.next_offset = offset + count;
    if (offset > 0) page.prev_offset = std::max<long>(0, offset - count);
  } else if (!row_keys.empty()) {
    // forward: more after the last row; backward: more before the first
    if (backward ? true : more) page.next_cursor = EncodeCursor('n', row_keys.back());
    if (backward ? more : q.cursor.has_value()) page.prev_cursor = EncodeCursor('p', row_keys.front());
  } else if (q.cursor) {
    // an empty page reached by a cursor: offer the way back
    if (!backward) page.prev_cursor = "p" + q.cursor->substr(1);
    else page.next_cursor = "n" + q.cursor->substr(1);
  }

  if (q.total != fhir::TotalMode::kNone) {
    if (!q.cursor && !more && (offset == 0 || n > 0)) {
      page.total = offset + static_cast<int64_t>(n);  // the whole result is known
    } else if (q.total == fhir::TotalMode::kEstimate) {
      page.total = EstimateRows(tx, from, where, where_params);
      page.total_is_estimate = true;
    } else {
      auto r = tx.exec_params("SELECT count(*) FROM " + from + " WHERE " + where,
                              pqxx::prepare::make_dynamic_params(where_params));
      page.total = r[0][0].as<int64_t>();
    }
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
  return page;
}

}  // namespace

}  // namespace eds::storage
