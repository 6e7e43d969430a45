#!/usr/bin/env bash
# Fetches the pinned FHIR package hl7.fhir.r4.examples@4.0.1 from the npm registry,
# verifies its sha512 integrity and unpacks it into the FHIR package cache.
set -euo pipefail

PKG_NAME="hl7.fhir.r4.examples"
PKG_VERSION="4.0.1"
PKG_INTEGRITY="sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6BzylmipLkBW4f//pT+Bc94x+8LImwTdvaNThPJoOzpBzvxAzNqjeu3X/zLw=="

die() {
    printf 'fetch_definitions: error: %s\n' "$*" >&2
    exit 1
}
info() {
    printf 'fetch_definitions: %s\n' "$*" >&2
}

cache="${EDS_FHIR_PACKAGES:-${HOME:?HOME is not set}/.fhir/packages}"
target="$cache/$PKG_NAME#$PKG_VERSION"
marker="$target/.eds-verified"

is_installed() {
    [[ -f "$target/package/package.json" && -f "$marker" &&
        "$(<"$marker")" == "$PKG_INTEGRITY" ]]
}

if is_installed; then
    printf '%s\n' "$target/package"
    exit 0
fi

for tool in openssl base64 tar; do
    command -v "$tool" >/dev/null || die "'$tool' is required (run deploy/setup.sh)"
done

mkdir -p "$cache"
# Serialise concurrent runs sharing the same cache.
exec {lock_fd}>"$cache/.eds-fetch.lock"
flock "$lock_fd"
if is_installed; then
    printf '%s\n' "$target/package"
    exit 0
fi

work="$(mktemp -d "$cache/.eds-fetch.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT

if [[ -n "${EDS_FHIR_PACKAGE_TGZ:-}" ]]; then
    [[ -f "$EDS_FHIR_PACKAGE_TGZ" ]] || die "EDS_FHIR_PACKAGE_TGZ=$EDS_FHIR_PACKAGE_TGZ is not a file"
    tgz="$EDS_FHIR_PACKAGE_TGZ"
    info "using $tgz"
else
    command -v npm >/dev/null || die "'npm' is required to download $PKG_NAME@$PKG_VERSION (run deploy/setup.sh)"
    info "downloading $PKG_NAME@$PKG_VERSION"
    mkdir "$work/download"
    (cd "$work/download" &&
        npm pack "$PKG_NAME@$PKG_VERSION" --pack-destination "$work/download" \
            --ignore-scripts --silent >/dev/null) ||
        die "npm pack $PKG_NAME@$PKG_VERSION failed"
    shopt -s nullglob
    tgzs=("$work/download"/*.tgz)
    shopt -u nullglob
    ((${#tgzs[@]} == 1)) || die "expected one tarball from npm pack, found ${#tgzs[@]}"
    tgz="${tgzs[0]}"
fi

actual="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ "$actual" != "$PKG_INTEGRITY" ]]; then
    die "integrity mismatch for $tgz: expected $PKG_INTEGRITY, got $actual"
fi

stage="$work/stage"
mkdir "$stage"
tar -xzf "$tgz" -C "$stage" --no-same-owner --no-same-permissions
[[ -f "$stage/package/package.json" ]] || die "tarball has no package/package.json"
grep -Eq "\"version\"[[:space:]]*:[[:space:]]*\"$PKG_VERSION\"" "$stage/package/package.json" ||
    die "unpacked package.json does not declare version $PKG_VERSION"
printf '%s\n' "$PKG_INTEGRITY" >"$stage/.eds-verified"
chmod 755 "$stage"

# Replace any incomplete or unverified previous copy, then move into place
# with a single rename on the same filesystem.
if [[ -e "$target" ]]; then
    mv -- "$target" "$work/previous"
fi
mv -T -- "$stage" "$target"
printf '%s\n' "$target/package"
