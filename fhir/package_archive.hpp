// FHIR package tarballs (.tgz: a gzip-compressed tar whose entries sit
// under package/, with package/package.json), read whole into memory so
// their resources load like loose files.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace eds::fhir {

struct PackageFile {
  std::string name;  // the entry's name inside the package, without "package/"
  std::string text;
};

// The JSON resources of a FHIR package tarball: the regular files directly
// under package/ whose names end in .json, but package.json and the
// .index.json (examples and other subfolders are not the package's
// resources). Returns false with `problem` set (what is wrong, without the
// file name) when the file cannot be read, is not gzip data, is truncated
// or corrupt, or holds no package/package.json; `out` is then left empty.
bool ReadPackageArchive(const std::filesystem::path& file, std::vector<PackageFile>& out, std::string& problem);

// The files of an uncompressed tar image (ustar or GNU: regular files
// only, names with ustar's prefix, GNU long names, pax `path` records), up
// to the end-of-archive block. Returns false with `problem` set on a bad
// header checksum, a size field that is not a number, or data or headers
// cut short. Names are as stored (package/StructureDefinition-x.json).
bool ReadTar(std::string_view tar, std::vector<PackageFile>& out, std::string& problem);

// Whether `file` is named like a package tarball (.tgz or .tar.gz).
bool IsPackageArchiveName(const std::filesystem::path& file);

}  // namespace eds::fhir
