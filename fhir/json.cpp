// FHIR JSON parsing and rendering on RapidJSON.
#include "fhir/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fhir/json_internal.hpp"

namespace eds::fhir {
namespace {

// SAX handler that builds the Document, keeps numbers as marked text and
// stops at the depth limit before the tree grows deeper.
class TreeBuilder {
 public:
  TreeBuilder(rapidjson::Document& doc, std::size_t max_depth) : doc_(doc), max_depth_(max_depth) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType len, bool) {
    number_.assign(1, kNumberMark);
    number_.append(s, len);
    return doc_.String(number_.data(), static_cast<rapidjson::SizeType>(number_.size()), true);
  }
  bool String(const char* s, rapidjson::SizeType len, bool) {
    if (len > 0 && s[0] == kNumberMark) {
      error_ = "string values must not start with the control character U+0001";
      return false;
    }
    return NoNul(s, len) && doc_.String(s, len, true);
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) { return NoNul(s, len) && doc_.Key(s, len, true); }
  bool StartObject() { return Enter() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { --depth_; return doc_.EndObject(n); }
  bool StartArray() { return Enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { --depth_; return doc_.EndArray(n); }

  const std::string& error() const { return error_; }

 private:
  // U+0000 is not allowed in FHIR strings (nor storable in jsonb).
  bool NoNul(const char* s, rapidjson::SizeType len) {
    if (std::memchr(s, '\0', len) == nullptr) return true;
    error_ = "strings must not contain the character U+0000";
    return false;
  }
  bool Enter() {
    if (++depth_ > max_depth_) {
      error_ = "JSON nesting deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }
  rapidjson::Document& doc_;
  std::size_t max_depth_;
  std::size_t depth_ = 0;
  std::string number_;
  std::string error_;
};

// Finds a duplicate key anywhere in the tree; returns its name or nullptr.
// Small objects compare pairwise; large ones sort their names, so a body
// with a huge object costs O(n log n), not O(n^2).
const JsonValue* FindDuplicateKey(const JsonValue& v) {
  if (v.IsObject()) {
    constexpr rapidjson::SizeType kPairwiseLimit = 16;
    if (v.MemberCount() <= kPairwiseLimit) {
      for (auto a = v.MemberBegin(); a != v.MemberEnd(); ++a)
        for (auto b = a + 1; b != v.MemberEnd(); ++b)
          if (a->name == b->name) return &a->name;
    } else {
      std::vector<const JsonValue*> names;
      names.reserve(v.MemberCount());
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) names.push_back(&m->name);
      auto less = [](const JsonValue* x, const JsonValue* y) { return StringOf(*x) < StringOf(*y); };
      std::sort(names.begin(), names.end(), less);
      auto eq = [](const JsonValue* x, const JsonValue* y) { return StringOf(*x) == StringOf(*y); };
      auto dup = std::adjacent_find(names.begin(), names.end(), eq);
      if (dup != names.end()) return *dup;
    }
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m)
      if (auto* d = FindDuplicateKey(m->value)) return d;
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray())
      if (auto* d = FindDuplicateKey(e)) return d;
  }
  return nullptr;
}

template <class Writer>
void WriteValue(Writer& w, const JsonValue& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType: w.Null(); break;
    case rapidjson::kFalseType: w.Bool(false); break;
    case rapidjson::kTrueType: w.Bool(true); break;
    case rapidjson::kNumberType:
      if (v.IsInt64()) w.Int64(v.GetInt64());
      else if (v.IsUint64()) w.Uint64(v.GetUint64());
      else w.Double(v.GetDouble());
      break;
    case rapidjson::kStringType:
      if (IsNumber(v)) {
        auto t = NumberText(v);
        w.RawValue(t.data(), t.size(), rapidjson::kNumberType);
      } else {
        w.String(v.GetString(), v.GetStringLength());
      }
      break;
    case rapidjson::kArrayType:
      w.StartArray();
      for (const auto& e : v.GetArray()) WriteValue(w, e);
      w.EndArray();
      break;
    case rapidjson::kObjectType:
      w.StartObject();
      for (const auto& m : v.GetObject()) {
        w.Key(m.name.GetString(), m.name.GetStringLength());
        WriteValue(w, m.value);
      }
      w.EndObject();
      break;
  }
}

bool KeyIs(const JsonValue& name, std::string_view key) {
  return name.GetStringLength() == key.size() &&
         std::memcmp(name.GetString(), key.data(), key.size()) == 0;
}

// A JSON number as (sign, significant digits, exponent of the last digit):
// 1.50 -> (+, "150", -2), 1E-22 and 0.0000000000000000000001 -> (+, "1", -22).
// Equal keys mean equal value and equal precision.
std::string CanonicalNumber(std::string_view t) {
  std::string digits;
  long exponent = 0;
  bool negative = !t.empty() && t[0] == '-';
  std::size_t i = negative ? 1 : 0;
  bool fraction = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '.') {
      fraction = true;
    } else if (c == 'e' || c == 'E') {
      exponent += std::strtol(std::string(t.substr(i + 1)).c_str(), nullptr, 10);
      break;
    } else {
      digits.push_back(c);
      if (fraction) --exponent;
    }
  }
  auto first = digits.find_first_not_of('0');
  if (first == std::string::npos) return "0e" + std::to_string(exponent);  // zero keeps its precision
  digits.erase(0, first);
  return (negative ? "-" : "") + digits + "e" + std::to_string(exponent);
}

bool ValuesEquivalent(const JsonValue& a, const JsonValue& b, bool ignore_meta, int level);

bool ObjectsEquivalent(const JsonValue& a, const JsonValue& b, bool ignore_meta, int level) {
  // With ignore_meta, level 0 is the resource and level 1 its meta object.
  auto skipped = [&](const JsonValue& name, const JsonValue& value) {
    if (!ignore_meta) return false;
    if (level == 1) return KeyIs(name, "versionId") || KeyIs(name, "lastUpdated");
    if (level == 0 && KeyIs(name, "meta") && value.IsObject()) {
      for (const auto& m : value.GetObject())
        if (!KeyIs(m.name, "versionId") && !KeyIs(m.name, "lastUpdated")) return false;
      return true;  // meta holds nothing but server-owned elements
    }
    return false;
  };
  std::size_t count_a = 0;
  for (const auto& m : a.GetObject()) {
    if (skipped(m.name, m.value)) continue;
    ++count_a;
    auto it = b.FindMember(m.name);
    if (it == b.MemberEnd()) return false;
    bool meta_child = ignore_meta && level == 0 && KeyIs(m.name, "meta");
    if (!ValuesEquivalent(m.value, it->value, ignore_meta && meta_child, meta_child ? 1 : 2))
      return false;
  }
  std::size_t count_b = 0;
  for (const auto& m : b.GetObject())
    if (!skipped(m.name, m.value)) ++count_b;
  return count_a == count_b;
}

bool ValuesEquivalent(const JsonValue& a, const JsonValue& b, bool ignore_meta, int level) {
  if (a.GetType() != b.GetType()) return false;
  if (a.IsObject()) return ObjectsEquivalent(a, b, ignore_meta, level);
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!ValuesEquivalent(a[i], b[i], false, 2)) return false;
    return true;
  }
  if (IsNumber(a) && IsNumber(b)) return CanonicalNumber(NumberText(a)) == CanonicalNumber(NumberText(b));
  return a == b;
}

}  // namespace

bool ParseJsonTree(std::string_view text, std::size_t max_depth, rapidjson::Document& doc,
                   std::string& error) {
  TreeBuilder builder(doc, max_depth);
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::Reader reader;
  bool ok = false;
  auto generate = [&](rapidjson::Document& /*target*/) {
    constexpr unsigned kFlags = rapidjson::kParseIterativeFlag |
                                rapidjson::kParseNumbersAsStringsFlag |
                                rapidjson::kParseValidateEncodingFlag;
    ok = !reader.Parse<kFlags>(ms, builder).IsError();
    return ok;
  };
  doc.Populate(generate);
  if (!ok) {
    if (!builder.error().empty()) {
      error = builder.error();
    } else {
      error = std::string("invalid JSON: ") + rapidjson::GetParseError_En(reader.GetParseErrorCode()) +
              " (at offset " + std::to_string(reader.GetErrorOffset()) + ")";
    }
    return false;
  }
  if (const auto* dup = FindDuplicateKey(doc)) {
    error = "duplicate JSON property \"" + std::string(StringOf(*dup)) + "\"";
    return false;
  }
  return true;
}

struct Resource::Impl {
  JsonTree tree;
  std::string type;
  std::optional<std::string> id_override;
};

Resource::Resource() : impl_(std::make_unique<Impl>()) {}
Resource::Resource(Resource&&) noexcept = default;
Resource& Resource::operator=(Resource&&) noexcept = default;
Resource::~Resource() = default;

Result<Resource> Resource::Parse(std::string_view text, const JsonLimits& limits) {
  Resource r;
  auto& doc = r.impl_->tree.doc;
  std::string error;
  if (!ParseJsonTree(text, limits.max_depth, doc, error))
    return MakeError(ErrorKind::kInvalid, std::move(error));
  if (!doc.IsObject())
    return MakeError(ErrorKind::kInvalid, "a FHIR resource must be a JSON object");
  auto rt = doc.FindMember("resourceType");
  if (rt == doc.MemberEnd())
    return MakeError(ErrorKind::kInvalid, "the resource has no resourceType", "resourceType");
  if (!IsString(rt->value) || rt->value.GetStringLength() == 0)
    return MakeError(ErrorKind::kInvalid, "resourceType must be a non-empty string", "resourceType");
  r.impl_->type = std::string(StringOf(rt->value));
  auto id = doc.FindMember("id");
  if (id != doc.MemberEnd() && !IsString(id->value))
    return MakeError(ErrorKind::kInvalid, "id must be a string", r.impl_->type + ".id");
  return r;
}

const std::string& Resource::type() const { return impl_->type; }

std::optional<std::string> Resource::id() const {
  if (impl_->id_override) return impl_->id_override;
  const auto& doc = impl_->tree.doc;
  auto id = doc.FindMember("id");
  if (id == doc.MemberEnd()) return std::nullopt;
  return std::string(StringOf(id->value));
}

void Resource::SetId(std::string id) { impl_->id_override = std::move(id); }

Resource Resource::Clone() const {
  Resource r;
  r.impl_->tree.doc.CopyFrom(impl_->tree.doc, r.impl_->tree.doc.GetAllocator());
  r.impl_->type = impl_->type;
  r.impl_->id_override = impl_->id_override;
  return r;
}

const JsonTree& Resource::tree() const { return impl_->tree; }

std::string Resource::Render(std::string_view version_id, std::string_view last_updated) const {
  const auto& doc = impl_->tree.doc;
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("resourceType");
  w.String(impl_->type.data(), static_cast<rapidjson::SizeType>(impl_->type.size()));
  if (auto id = this->id()) {
    w.Key("id");
    w.String(id->data(), static_cast<rapidjson::SizeType>(id->size()));
  }
  w.Key("meta");
  w.StartObject();
  w.Key("versionId");
  w.String(version_id.data(), static_cast<rapidjson::SizeType>(version_id.size()));
  w.Key("lastUpdated");
  w.String(last_updated.data(), static_cast<rapidjson::SizeType>(last_updated.size()));
  auto meta = doc.FindMember("meta");
  if (meta != doc.MemberEnd() && meta->value.IsObject()) {
    for (const auto& m : meta->value.GetObject()) {
      if (KeyIs(m.name, "versionId") || KeyIs(m.name, "lastUpdated")) continue;
      w.Key(m.name.GetString(), m.name.GetStringLength());
      WriteValue(w, m.value);
    }
  }
  w.EndObject();
  for (const auto& m : doc.GetObject()) {
    if (KeyIs(m.name, "resourceType") || KeyIs(m.name, "id") || KeyIs(m.name, "meta")) continue;
    w.Key(m.name.GetString(), m.name.GetStringLength());
    WriteValue(w, m.value);
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string SerializeJson(const JsonValue& value) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  WriteValue(w, value);
  return {buf.GetString(), buf.GetSize()};
}

namespace {

// The links of a narrative (Narrative.div: <a href="..."> and <img
// src="...">) rewritten by `map`; the number of links changed.
int RewriteNarrativeLinks(std::string& xhtml, const std::function<std::optional<std::string>(std::string_view)>& map) {
  int n = 0;
  for (std::string_view attr : {std::string_view("href="), std::string_view("src=")}) {
    std::size_t pos = 0;
    while ((pos = xhtml.find(attr, pos)) != std::string::npos) {
      const std::size_t at = pos;
      pos += attr.size();
      // an attribute name: preceded by white space
      if (at == 0 || (xhtml[at - 1] != ' ' && xhtml[at - 1] != '\t' && xhtml[at - 1] != '\n' && xhtml[at - 1] != '\r'))
        continue;
      if (pos >= xhtml.size() || (xhtml[pos] != '"' && xhtml[pos] != '\'')) continue;
      const char quote = xhtml[pos];
      const std::size_t start = pos + 1;
      const std::size_t end = xhtml.find(quote, start);
      if (end == std::string::npos) break;
      if (auto to = map(std::string_view(xhtml).substr(start, end - start))) {
        if (to->find_first_of("\"'<>&") != std::string::npos) {  // not an attribute value as it is
          pos = end + 1;
          continue;
        }
        xhtml.replace(start, end - start, *to);
        pos = start + to->size() + 1;
        ++n;
      } else {
        pos = end + 1;
      }
    }
  }
  return n;
}

int Rewrite(JsonValue& v, rapidjson::Document::AllocatorType& alloc,
            const std::function<std::optional<std::string>(std::string_view)>& map) {
  int n = 0;
  if (v.IsObject()) {
    for (auto& m : v.GetObject()) {
      if (KeyIs(m.name, "reference") && IsString(m.value)) {
        if (auto to = map(StringOf(m.value))) {
          m.value.SetString(to->data(), static_cast<rapidjson::SizeType>(to->size()), alloc);
          ++n;
        }
      } else if (KeyIs(m.name, "div") && IsString(m.value)) {
        std::string xhtml(StringOf(m.value));
        if (int changed = RewriteNarrativeLinks(xhtml, map); changed > 0) {
          m.value.SetString(xhtml.data(), static_cast<rapidjson::SizeType>(xhtml.size()), alloc);
          n += changed;
        }
      } else {
        n += Rewrite(m.value, alloc, map);
      }
    }
  } else if (v.IsArray()) {
    for (auto& e : v.GetArray()) n += Rewrite(e, alloc, map);
  }
  return n;
}
}  // namespace

namespace {
void Visit(const JsonValue& v, const std::function<void(std::string_view)>& fn) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      if (KeyIs(m.name, "reference") && IsString(m.value)) fn(StringOf(m.value));
      else Visit(m.value, fn);
    }
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray()) Visit(e, fn);
  }
}
}  // namespace

void Resource::ForEachReference(const std::function<void(std::string_view)>& fn) const {
  Visit(impl_->tree.doc, fn);
}

int Resource::RewriteReferences(const std::function<std::optional<std::string>(std::string_view)>& map) {
  auto& doc = impl_->tree.doc;
  return Rewrite(doc, doc.GetAllocator(), map);
}

std::string PrettyPrintJson(std::string_view json) {
  rapidjson::Document doc;
  std::string error;
  if (!ParseJsonTree(json, 1000, doc, error)) return std::string(json);
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  WriteValue(w, doc);
  return {buf.GetString(), buf.GetSize()};
}

bool JsonEquivalent(std::string_view a, std::string_view b, bool ignore_server_meta) {
  rapidjson::Document da, db;
  std::string error;
  if (!ParseJsonTree(a, 1000, da, error) || !ParseJsonTree(b, 1000, db, error)) return false;
  return ValuesEquivalent(da, db, ignore_server_meta, 0);
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

}  // namespace eds::fhir
