// Bulk sources: Bundle entries and content-derived ids.
#include "fhir/bulk.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>

#include "fhir/json_internal.hpp"
#include "fhir/primitives.hpp"

namespace eds::fhir {
namespace {

// MurmurHash64A (public domain, Austin Appleby): a fast, well-mixed 64-bit
// hash; two seeds give the 128 bits of an id.
uint64_t Murmur64(std::string_view data, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  uint64_t h = seed ^ (data.size() * m);
  const char* p = data.data();
  const char* end = p + (data.size() / 8) * 8;
  for (; p != end; p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const auto* tail = reinterpret_cast<const unsigned char*>(p);
  switch (data.size() & 7) {
    case 7: h ^= uint64_t(tail[6]) << 48; [[fallthrough]];
    case 6: h ^= uint64_t(tail[5]) << 40; [[fallthrough]];
    case 5: h ^= uint64_t(tail[4]) << 32; [[fallthrough]];
    case 4: h ^= uint64_t(tail[3]) << 24; [[fallthrough]];
    case 3: h ^= uint64_t(tail[2]) << 16; [[fallthrough]];
    case 2: h ^= uint64_t(tail[1]) << 8; [[fallthrough]];
    case 1: h ^= uint64_t(tail[0]); h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

}  // namespace

Result<std::vector<BundleEntryResource>> BundleEntryResources(const Resource& bundle, const JsonLimits& limits) {
  const auto& doc = bundle.tree().doc;
  auto entries = doc.FindMember("entry");
  if (entries == doc.MemberEnd()) return std::vector<BundleEntryResource>{};
  if (!entries->value.IsArray()) return MakeError(ErrorKind::kInvalid, "Bundle.entry must be an array", "Bundle.entry");
  std::vector<BundleEntryResource> out;
  out.reserve(entries->value.Size());
  std::size_t i = 0;
  for (const auto& e : entries->value.GetArray()) {
    const std::size_t index = i++;
    if (!e.IsObject()) {
      out.push_back({index, MakeError(ErrorKind::kInvalid, "the entry is not a JSON object",
                                      fmt::format("Bundle.entry[{}]", index)), {}});
      continue;
    }
    auto r = e.FindMember("resource");
    if (r == e.MemberEnd()) {
      out.push_back({index, MakeError(ErrorKind::kInvalid, "the entry has no resource",
                                      fmt::format("Bundle.entry[{}]", index)), {}});
      continue;
    }
    std::string full_url;
    if (auto f = e.FindMember("fullUrl"); f != e.MemberEnd() && f->value.IsString())
      full_url.assign(f->value.GetString(), f->value.GetStringLength());
    out.push_back({index, Resource::Parse(SerializeJson(r->value), limits), std::move(full_url)});
  }
  return out;
}

std::optional<std::string> FullUrlId(std::string_view full_url, std::string_view type) {
  if (full_url.find("://") == std::string_view::npos) return std::nullopt;
  const std::string marker = "/" + std::string(type) + "/";
  auto pos = full_url.rfind(marker);
  if (pos == std::string_view::npos) return std::nullopt;
  std::string id(full_url.substr(pos + marker.size()));
  if (!IsValidId(id)) return std::nullopt;
  return id;
}

int RewriteBundleReferences(std::vector<BundleEntryResource>& entries) {
  std::map<std::string, std::string, std::less<>> targets;
  for (const auto& e : entries) {
    if (e.full_url.empty() || !e.resource) continue;
    auto id = e.resource->id();
    if (!id) continue;
    const std::string target = e.resource->type() + "/" + *id;
    targets.emplace(e.full_url, target);
    // an absolute RESTful fullUrl also names the entry by its relative form
    const std::string marker = "/" + e.resource->type() + "/";
    auto pos = e.full_url.rfind(marker);
    if (pos != std::string::npos && e.full_url.find("://") != std::string::npos)
      targets.emplace(e.full_url.substr(pos + 1), target);
  }
  if (targets.empty()) return 0;
  auto map = [&targets](std::string_view ref) -> std::optional<std::string> {
    auto it = targets.find(ref);
    if (it == targets.end() || it->second == ref) return std::nullopt;
    return it->second;
  };
  int rewritten = 0;
  for (auto& e : entries)
    if (e.resource && e.resource->id()) rewritten += e.resource->RewriteReferences(map);
  return rewritten;
}

std::string ContentDerivedId(const Resource& resource) {
  // Rendering puts resourceType first and leaves the server's meta empty, so
  // equal content gives equal text whatever the source's layout.
  std::string text = resource.Render("", "");
  return fmt::format("{:016x}{:016x}", Murmur64(text, 0x45445331ULL), Murmur64(text, 0x9e3779b97f4a7c15ULL));
}

}  // namespace eds::fhir
