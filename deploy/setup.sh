#!/usr/bin/env bash
# Installs (idempotently) the Debian 12 packages needed to build, test and
# benchmark EDS core, then fetches the pinned FHIR definitions package.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}
info() {
    printf 'setup: %s\n' "$*" >&2
}

# pgbench ships in postgresql-15 (/usr/lib/postgresql/15/bin/pgbench, wrapped
# by /usr/bin/pgbench from postgresql-client-common); postgresql-contrib is the
# metapackage for the contrib extensions. python3 (standard library only)
# generates and loads the search benchmark's data.
packages=(
    build-essential cmake ninja-build pkg-config git ca-certificates curl openssl
    libboost1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev
    libpqxx-dev rapidjson-dev libfmt-dev catch2 libssl-dev zlib1g-dev
    postgresql-15 postgresql-client-15 postgresql-contrib
    wrk python3
)
# Node.js/npm may come from another source (e.g. a NodeSource or nvm install);
# installing Debian's npm over it can break it, so only add them when missing.
if ! command -v npm >/dev/null 2>&1; then
    packages+=(npm)
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
    if [[ "$(id -u)" -ne 0 ]]; then
        die "missing Debian packages: ${missing[*]}
  install them as root with:
  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    info "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    still=()
    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || still+=("$pkg")
    done
    ((${#still[@]} == 0)) || die "packages still not installed after apt-get: ${still[*]}"
else
    info "all required packages are installed"
fi

for bin in /usr/lib/postgresql/15/bin/pgbench /usr/lib/postgresql/15/bin/initdb; do
    [[ -x "$bin" ]] || die "$bin is missing although postgresql-15 is installed"
done
command -v pgbench >/dev/null 2>&1 || die "pgbench is not on PATH (postgresql-client-common missing?)"
command -v npm >/dev/null 2>&1 || die "npm is not available"

bash "$repo_root/deploy/fetch_definitions.sh"
