// FHIR package tarballs: gzip inflated with zlib, the tar format read here
// (512-byte headers, data padded to whole blocks, two zero blocks at the
// end).
#include "fhir/package_archive.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

namespace eds::fhir {
namespace {

constexpr std::size_t kBlock = 512;
// A package larger than this when inflated is refused rather than read
// into memory (the R4 core package is about 80 MB).
constexpr std::size_t kMaxInflated = std::size_t{1} << 30;

// A NUL-terminated (or full-width) header field.
std::string_view Field(std::string_view h, std::size_t at, std::size_t len) {
  std::string_view f = h.substr(at, len);
  if (auto nul = f.find('\0'); nul != std::string_view::npos) f = f.substr(0, nul);
  return f;
}

// A numeric header field: octal digits (spaces or NULs around them), or
// GNU's base-256 form (first byte's high bit set) for large sizes.
bool Number(std::string_view h, std::size_t at, std::size_t len, std::uint64_t& value) {
  std::string_view f = h.substr(at, len);
  value = 0;
  if (static_cast<unsigned char>(f[0]) & 0x80) {
    for (std::size_t k = 0; k < f.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(f[k]);
      if (k == 0) c &= 0x7f;
      if (value > (std::uint64_t{1} << 55)) return false;
      value = (value << 8) | c;
    }
    return true;
  }
  std::size_t k = 0;
  while (k < f.size() && f[k] == ' ') ++k;
  bool digits = false;
  for (; k < f.size() && f[k] >= '0' && f[k] <= '7'; ++k) {
    if (value > (std::uint64_t{1} << 60)) return false;
    value = value * 8 + static_cast<std::uint64_t>(f[k] - '0');
    digits = true;
  }
  for (; k < f.size(); ++k)
    if (f[k] != ' ' && f[k] != '\0') return false;
  return digits;
}

bool ChecksumOk(std::string_view h) {
  std::uint64_t stored = 0;
  if (!Number(h, 148, 8, stored)) return false;
  std::uint64_t sum = 0;
  for (std::size_t k = 0; k < kBlock; ++k)
    sum += (k >= 148 && k < 156) ? ' ' : static_cast<unsigned char>(h[k]);
  return sum == stored;
}

// The value of the `path` record of a pax extended header ("" if none).
std::string PaxPath(std::string_view data) {
  std::string path;
  while (!data.empty()) {
    auto sp = data.find(' ');
    if (sp == std::string_view::npos) break;
    std::size_t len = 0;
    for (char c : data.substr(0, sp)) {
      if (c < '0' || c > '9') return path;
      len = len * 10 + static_cast<std::size_t>(c - '0');
    }
    if (len <= sp || len > data.size()) break;
    std::string_view record = data.substr(sp + 1, len - sp - 1);  // key=value\n
    if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
    if (record.substr(0, 5) == "path=") path = std::string(record.substr(5));
    data.remove_prefix(len);
  }
  return path;
}

bool Inflate(const std::string& in, std::string& out, std::string& problem) {
  if (in.size() < 2 || static_cast<unsigned char>(in[0]) != 0x1f || static_cast<unsigned char>(in[1]) != 0x8b) {
    problem = "not gzip-compressed data";
    return false;
  }
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) {
    problem = "zlib could not be initialised";
    return false;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());  // packages are far below 4 GB; checked by the caller
  char buf[1 << 16];
  int rc = Z_OK;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > kMaxInflated) {
      problem = "larger than 1 GiB once inflated";
      break;
    }
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      // another gzip member follows (concatenated .gz files are one stream)
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      problem = "the gzip data is truncated";
    } else {
      problem = std::string("the gzip data is corrupt") + (z.msg != nullptr ? std::string(" (") + z.msg + ")" : "");
    }
    break;
  }
  inflateEnd(&z);
  return problem.empty();
}

}  // namespace

bool ReadTar(std::string_view tar, std::vector<PackageFile>& out, std::string& problem) {
  std::string long_name;  // from a GNU 'L' entry or a pax 'x' header, for the next entry
  std::size_t at = 0;
  for (;;) {
    if (at + kBlock > tar.size()) {
      problem = at == tar.size() ? "the tar data ends without its end-of-archive blocks"
                                 : "the tar data is truncated (a header is cut short)";
      return false;
    }
    std::string_view h = tar.substr(at, kBlock);
    if (std::all_of(h.begin(), h.end(), [](char c) { return c == '\0'; })) return true;  // end of archive
    if (!ChecksumOk(h)) {
      problem = "the tar header at offset " + std::to_string(at) + " is corrupt (bad checksum)";
      return false;
    }
    std::uint64_t size = 0;
    if (!Number(h, 124, 12, size)) {
      problem = "the tar header at offset " + std::to_string(at) + " has an unreadable size";
      return false;
    }
    const std::size_t data_at = at + kBlock;
    if (size > tar.size() - data_at) {
      problem = "the tar data is truncated (an entry's data is cut short)";
      return false;
    }
    std::string_view data = tar.substr(data_at, static_cast<std::size_t>(size));
    const char type = h[156];
    std::string name;
    if (!long_name.empty()) {
      name = std::move(long_name);
      long_name.clear();
    } else {
      // POSIX ustar (magic "ustar\0") splits long names into prefix/name;
      // GNU tar ("ustar  ") keeps other fields there
      std::string_view prefix = Field(h, 345, 155);
      name = std::string(Field(h, 0, 100));
      if (h.substr(257, 6) == std::string_view("ustar\0", 6) && !prefix.empty())
        name = std::string(prefix) + "/" + name;
    }
    if (type == 'L') {
      long_name = std::string(Field(data, 0, data.size()));
    } else if (type == 'x') {
      long_name = PaxPath(data);
    } else if (type == '0' || type == '\0' || type == '7') {
      out.push_back({std::move(name), std::string(data)});
    }  // directories, links, devices, pax globals: nothing to read
    at = data_at + (static_cast<std::size_t>(size) + kBlock - 1) / kBlock * kBlock;
  }
}

bool ReadPackageArchive(const std::filesystem::path& file, std::vector<PackageFile>& out, std::string& problem) {
  out.clear();
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    problem = "cannot be read";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string gz = ss.str();
  if (gz.size() >= (std::size_t{1} << 31)) {
    problem = "larger than 2 GiB";
    return false;
  }
  std::string tar;
  if (!Inflate(gz, tar, problem)) return false;
  std::vector<PackageFile> files;
  if (!ReadTar(tar, files, problem)) return false;
  bool manifest = false;
  for (auto& f : files) {
    std::string_view name = f.name;
    if (name.substr(0, 2) == "./") name.remove_prefix(2);
    if (name.substr(0, 8) != "package/") continue;
    name.remove_prefix(8);
    if (name == "package.json") {
      manifest = true;
      continue;
    }
    if (name.find('/') != std::string_view::npos || name.empty() || name.front() == '.') continue;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    out.push_back({std::string(name), std::move(f.text)});
  }
  if (!manifest) {
    out.clear();
    problem = "not a FHIR package (no package/package.json)";
    return false;
  }
  return true;
}

bool IsPackageArchiveName(const std::filesystem::path& file) {
  const std::string name = file.filename().string();
  auto ends = [&](std::string_view s) {
    return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".tgz") || ends(".tar.gz");
}

}  // namespace eds::fhir
