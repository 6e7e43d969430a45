// JSON Patch application on the RapidJSON tree.
#include "fhir/json_patch.hpp"

#include <fmt/format.h>

#include <vector>

#include "fhir/json_internal.hpp"

namespace eds::fhir {
namespace {

using Alloc = rapidjson::Document::AllocatorType;

struct Pointer {
  std::vector<std::string> tokens;
};

// RFC 6901: "" is the whole document; "/a/b~1c/0" -> {"a", "b/c", "0"}.
bool ParsePointer(std::string_view s, Pointer& out) {
  out.tokens.clear();
  if (s.empty()) return true;
  if (s[0] != '/') return false;
  std::string cur;
  for (std::size_t i = 1; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/') {
      out.tokens.push_back(std::move(cur));
      cur.clear();
    } else if (s[i] == '~') {
      if (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1')) return false;
      cur += s[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      cur += s[i];
    }
  }
  return true;
}

bool ArrayIndex(const std::string& token, rapidjson::SizeType size, bool allow_end, rapidjson::SizeType& out) {
  if (allow_end && token == "-") {
    out = size;
    return true;
  }
  if (token.empty() || (token.size() > 1 && token[0] == '0')) return false;
  unsigned long v = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
    if (v > 1'000'000) return false;
  }
  if (v > size || (!allow_end && v == size)) return false;
  out = static_cast<rapidjson::SizeType>(v);
  return true;
}

// The value the pointer names, or nullptr.
JsonValue* Resolve(JsonValue& root, const std::vector<std::string>& tokens, std::size_t count) {
  JsonValue* v = &root;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& t = tokens[i];
    if (v->IsObject()) {
      auto it = v->FindMember(rapidjson::StringRef(t.data(), static_cast<rapidjson::SizeType>(t.size())));
      if (it == v->MemberEnd()) return nullptr;
      v = &it->value;
    } else if (v->IsArray()) {
      rapidjson::SizeType idx = 0;
      if (!ArrayIndex(t, v->Size(), false, idx)) return nullptr;
      v = &(*v)[idx];
    } else {
      return nullptr;
    }
  }
  return v;
}

class Patcher {
 public:
  explicit Patcher(rapidjson::Document& doc) : doc_(doc), alloc_(doc.GetAllocator()) {}

  // Adds `value` at the pointer (RFC 6902 "add"); false when the parent is missing.
  bool Add(const Pointer& p, JsonValue value) {
    if (p.tokens.empty()) {
      static_cast<JsonValue&>(doc_) = std::move(value);
      return true;
    }
    JsonValue* parent = Resolve(doc_, p.tokens, p.tokens.size() - 1);
    if (parent == nullptr) return false;
    const std::string& last = p.tokens.back();
    if (parent->IsObject()) {
      auto it = parent->FindMember(rapidjson::StringRef(last.data(), static_cast<rapidjson::SizeType>(last.size())));
      if (it != parent->MemberEnd()) {
        it->value = std::move(value);
      } else {
        JsonValue key(last.data(), static_cast<rapidjson::SizeType>(last.size()), alloc_);
        parent->AddMember(key, value, alloc_);
      }
      return true;
    }
    if (parent->IsArray()) {
      rapidjson::SizeType idx = 0;
      if (!ArrayIndex(last, parent->Size(), true, idx)) return false;
      parent->PushBack(JsonValue(), alloc_);
      for (rapidjson::SizeType i = parent->Size() - 1; i > idx; --i) (*parent)[i] = std::move((*parent)[i - 1]);
      (*parent)[idx] = std::move(value);
      return true;
    }
    return false;
  }

  // Removes and returns the value at the pointer; false when it is missing.
  bool Remove(const Pointer& p, JsonValue* removed) {
    if (p.tokens.empty()) return false;
    JsonValue* parent = Resolve(doc_, p.tokens, p.tokens.size() - 1);
    if (parent == nullptr) return false;
    const std::string& last = p.tokens.back();
    if (parent->IsObject()) {
      auto it = parent->FindMember(rapidjson::StringRef(last.data(), static_cast<rapidjson::SizeType>(last.size())));
      if (it == parent->MemberEnd()) return false;
      if (removed != nullptr) *removed = std::move(it->value);
      parent->EraseMember(it);
      return true;
    }
    if (parent->IsArray()) {
      rapidjson::SizeType idx = 0;
      if (!ArrayIndex(last, parent->Size(), false, idx)) return false;
      if (removed != nullptr) *removed = std::move((*parent)[idx]);
      parent->Erase(parent->Begin() + idx);
      return true;
    }
    return false;
  }

  Alloc& alloc() { return alloc_; }
  rapidjson::Document& doc() { return doc_; }

 private:
  rapidjson::Document& doc_;
  Alloc& alloc_;
};

bool Equal(const JsonValue& a, const JsonValue& b) {
  if (a.GetType() != b.GetType()) return false;
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (const auto& m : a.GetObject()) {
      auto it = b.FindMember(m.name);
      if (it == b.MemberEnd() || !Equal(m.value, it->value)) return false;
    }
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!Equal(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

std::string StringMember(const JsonValue& op, const char* key, bool& present) {
  auto it = op.FindMember(key);
  present = it != op.MemberEnd() && IsString(it->value);
  return present ? std::string(StringOf(it->value)) : std::string();
}

}  // namespace

Result<std::string> ApplyJsonPatch(std::string_view document, std::string_view patch, std::size_t max_depth) {
  rapidjson::Document doc, ops;
  std::string error;
  if (!ParseJsonTree(document, max_depth, doc, error))
    return MakeError(ErrorKind::kInternal, "the stored resource is not valid JSON: " + error);
  if (!ParseJsonTree(patch, max_depth, ops, error)) return MakeError(ErrorKind::kInvalid, "the patch is not valid JSON: " + error);
  if (!ops.IsArray()) return MakeError(ErrorKind::kInvalid, "a JSON Patch must be an array of operations");
  Patcher patcher(doc);
  for (rapidjson::SizeType i = 0; i < ops.Size(); ++i) {
    const std::string where = fmt::format("patch[{}]", i);
    const JsonValue& op = ops[i];
    if (!op.IsObject()) return MakeError(ErrorKind::kInvalid, "each operation must be an object", where);
    bool has_op = false, has_path = false, has_from = false;
    std::string name = StringMember(op, "op", has_op);
    std::string path_text = StringMember(op, "path", has_path);
    std::string from_text = StringMember(op, "from", has_from);
    if (!has_op || !has_path) return MakeError(ErrorKind::kInvalid, "an operation needs 'op' and 'path'", where);
    Pointer path, from;
    if (!ParsePointer(path_text, path))
      return MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not a JSON Pointer", path_text), where);
    auto value_it = op.FindMember("value");
    const bool has_value = value_it != op.MemberEnd();
    auto unprocessable = [&](const std::string& what) {
      return MakeError(ErrorKind::kUnprocessable, fmt::format("{} '{}' cannot be applied: {}", name, path_text, what), where);
    };
    if (name == "add" || name == "replace" || name == "test") {
      if (!has_value) return MakeError(ErrorKind::kInvalid, "'" + name + "' needs a 'value'", where);
      JsonValue value(value_it->value, patcher.alloc());  // deep copy into the document
      if (name == "test") {
        JsonValue* target = Resolve(doc, path.tokens, path.tokens.size());
        if (target == nullptr) return unprocessable("the path does not exist");
        if (!Equal(*target, value)) return unprocessable("the value differs");
        continue;
      }
      if (name == "replace") {  // in place, so the member keeps its position
        JsonValue* target = Resolve(doc, path.tokens, path.tokens.size());
        if (target == nullptr) return unprocessable("the path does not exist");
        *target = std::move(value);
        continue;
      }
      if (!patcher.Add(path, std::move(value))) return unprocessable("the parent does not exist");
    } else if (name == "remove") {
      if (!patcher.Remove(path, nullptr)) return unprocessable("the path does not exist");
    } else if (name == "move" || name == "copy") {
      if (!has_from) return MakeError(ErrorKind::kInvalid, "'" + name + "' needs 'from'", where);
      if (!ParsePointer(from_text, from))
        return MakeError(ErrorKind::kInvalid, fmt::format("'{}' is not a JSON Pointer", from_text), where);
      JsonValue value;
      if (name == "move") {
        if (from_text.size() < path_text.size() && path_text.compare(0, from_text.size() + 1, from_text + "/") == 0)
          return unprocessable("cannot move a value into itself");
        if (!patcher.Remove(from, &value)) return unprocessable("'from' does not exist");
      } else {
        JsonValue* source = Resolve(doc, from.tokens, from.tokens.size());
        if (source == nullptr) return unprocessable("'from' does not exist");
        value.CopyFrom(*source, patcher.alloc());
      }
      if (!patcher.Add(path, std::move(value))) return unprocessable("the parent does not exist");
    } else {
      return MakeError(ErrorKind::kInvalid, fmt::format("unknown operation '{}'", name), where);
    }
  }
  return SerializeJson(doc);
}

}  // namespace eds::fhir
