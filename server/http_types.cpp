// HttpRequest/HttpResponse helpers.
#include "server/http_types.hpp"

#include <strings.h>

namespace eds::server {

std::string_view HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

bool HttpRequest::HasHeader(std::string_view lower_name) const {
  for (const auto& h : headers)
    if (h.first == lower_name) return true;
  return false;
}

void HttpResponse::SetHeader(std::string name, std::string value) {
  for (auto& h : headers)
    if (strcasecmp(h.first.c_str(), name.c_str()) == 0) {
      h.second = std::move(value);
      return;
    }
  headers.emplace_back(std::move(name), std::move(value));
}

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& h : headers)
    if (h.first.size() == name.size() && strncasecmp(h.first.data(), name.data(), name.size()) == 0)
      return h.second;
  return {};
}

}  // namespace eds::server
