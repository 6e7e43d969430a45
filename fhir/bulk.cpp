// Bulk sources: Bundle entries and content-derived ids.
#include "fhir/bulk.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>

#include "fhir/json_internal.hpp"

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
                                      fmt::format("Bundle.entry[{}]", index))});
      continue;
    }
    auto r = e.FindMember("resource");
    if (r == e.MemberEnd()) {
      out.push_back({index, MakeError(ErrorKind::kInvalid, "the entry has no resource",
                                      fmt::format("Bundle.entry[{}]", index))});
      continue;
    }
    out.push_back({index, Resource::Parse(SerializeJson(r->value), limits)});
  }
  return out;
}

std::string ContentDerivedId(const Resource& resource) {
  // Rendering puts resourceType first and leaves the server's meta empty, so
  // equal content gives equal text whatever the source's layout.
  std::string text = resource.Render("", "");
  return fmt::format("{:016x}{:016x}", Murmur64(text, 0x45445331ULL), Murmur64(text, 0x9e3779b97f4a7c15ULL));
}

}  // namespace eds::fhir
