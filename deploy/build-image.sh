#!/usr/bin/env bash
# Builds threatflow's container image with buildah (no Docker daemon) FROM scratch.
#
#   bash deploy/build-image.sh [BINARY=target/release/threatflow] [TAG=threatflow:dev]
#
# Stages a root filesystem in a scratch directory: the binary (debug info stripped), every
# shared library it and ONNX Runtime need (from ldd) with the dynamic loader, the ONNX Runtime
# CPU library (ORT_LIBRARY, default .tools/lib from scripts/setup.sh), CA certificates, the
# shipped models (each operator's versions and the prompt rules, no training data) under
# /opt/threatflow/models, the example config at /etc/threatflow/threatflow.toml, and passwd
# and group entries for uid 10001. Time zones need no tzdata: chrono-tz compiles the IANA
# database into the binary. Prints the image id and size.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:-$repo/target/release/threatflow}"
tag="${2:-threatflow:dev}"
ort_library="${ORT_LIBRARY:-$repo/.tools/lib/libonnxruntime.so.1.31.1}"
buildah=(buildah --storage-driver vfs)
command -v buildah >/dev/null || { echo "build-image: buildah is not installed (apt-get install buildah)" >&2; exit 2; }
[ -x "$binary" ] || { echo "build-image: no binary at $binary (cargo build --release -p threatflow)" >&2; exit 2; }
[ -f "$ort_library" ] || { echo "build-image: no ONNX Runtime library at $ort_library (scripts/setup.sh)" >&2; exit 2; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
# dev, proc and sys are mount points: runtimes mount them, and on a read-only root filesystem
# they must already exist.
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib" "$root/etc/ssl/certs" "$root/etc/threatflow" \
  "$root/opt/threatflow/models" "$root/tmp" "$root/dev" "$root/proc" "$root/sys" "$context/state"
cp "$binary" "$root/usr/local/bin/threatflow"
strip --strip-debug "$root/usr/local/bin/threatflow" 2>/dev/null || true
cp "$ort_library" "$root/usr/local/lib/"
ln -s "$(basename "$ort_library")" "$root/usr/local/lib/libonnxruntime.so"
loaded=("$binary" "$ort_library")

# The CUDA variant: ORT_LIBRARY from onnxruntime-gpu (its provider libraries sit beside it and
# are copied too) and CUDA_LIBRARY_PATH naming the directories of the CUDA 13 runtime, cuBLAS,
# cuRAND (and optionally cuDNN 9), e.g. the lib folders of PyPI's nvidia-cuda-runtime,
# nvidia-cublas, nvidia-curand. They go to /usr/local/lib (the image's LD_LIBRARY_PATH).
# libcuda.so.1 is the driver's: the NVIDIA container toolkit mounts it on a GPU node.
cuda_provider="$(dirname "$ort_library")/libonnxruntime_providers_cuda.so"
if [ -f "$cuda_provider" ]; then
  [ -n "${CUDA_LIBRARY_PATH:-}" ] || { echo "build-image: the CUDA provider needs CUDA_LIBRARY_PATH (CUDA 13 runtime, cuBLAS, cuRAND)" >&2; exit 2; }
  export LD_LIBRARY_PATH="$CUDA_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cp "$(dirname "$ort_library")"/libonnxruntime_providers_{shared,cuda}.so "$root/usr/local/lib/"
  loaded+=("$cuda_provider")
  missing="$(ldd "$cuda_provider" | awk '/not found/ {print $1}' | grep -v '^libcuda\.so' || true)"
  [ -z "$missing" ] || { echo "build-image: not in CUDA_LIBRARY_PATH: $missing" >&2; exit 2; }
  IFS=: read -r -a cuda_dirs <<< "$CUDA_LIBRARY_PATH"
  for directory in "${cuda_dirs[@]}"; do
    for library in "$directory"/libcudnn*.so.9; do [ -f "$library" ] && cp -L "$library" "$root/usr/local/lib/"; done
  done
fi

# The shared libraries of the binary and of ONNX Runtime (loaded at run time), and the loader.
# Libraries found through CUDA_LIBRARY_PATH go to /usr/local/lib; the system's keep their path.
for object in "${loaded[@]}"; do
  ldd "$object" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}' | while read -r library; do
    target="$library"
    for directory in ${CUDA_LIBRARY_PATH:+${CUDA_LIBRARY_PATH//:/ }}; do
      [ "$(dirname "$library")" = "$directory" ] && target="/usr/local/lib/$(basename "$library")"
    done
    mkdir -p "$root$(dirname "$target")"
    cp -L "$library" "$root$target"
  done
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

for operator_dir in "$repo"/models/*/; do
  operator="$(basename "$operator_dir")"
  for version in "$operator_dir"v*/; do
    [ -f "$version/manifest.json" ] || continue
    mkdir -p "$root/opt/threatflow/models/$operator"
    cp -r "$version" "$root/opt/threatflow/models/$operator/"
  done
done
if [ -d "$repo/models/prompt/rules" ]; then cp -r "$repo/models/prompt/rules" "$root/opt/threatflow/models/prompt/"; fi
if [ -d "$repo/models/alert/intel" ]; then
  mkdir -p "$root/opt/threatflow/models/alert/intel"
  cp -r "$repo"/models/alert/intel/v*/ "$root/opt/threatflow/models/alert/intel/"
fi
if [ -d "$repo/models/address/sources" ]; then cp -r "$repo/models/address/sources" "$root/opt/threatflow/models/address/"; fi
cp "$repo/deploy/config/threatflow.toml" "$root/etc/threatflow/threatflow.toml"
printf 'root:x:0:0:root:/root:/sbin/nologin\nthreatflow:x:10001:10001:threatflow:/var/lib/threatflow:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nthreatflow:x:10001:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
# /var/lib/threatflow, owned by the engine's user (COPY --chown in the Containerfile).
echo "state and model cache; mount a volume here" > "$context/state/README"

cp "$repo/deploy/Containerfile" "$context/Containerfile"
"${buildah[@]}" bud --isolation chroot --layers=false -q -t "$tag" -f "$context/Containerfile" "$context" >/dev/null
"${buildah[@]}" images --format '{{.ID}} {{.Size}}' "$tag"
