#!/usr/bin/env bash
# Runs a command from a threatflow image the way the Helm chart runs the pod: read-only root
# filesystem, uid/gid 10001, writable volumes only at /var/lib/threatflow (state, model cache)
# and /tmp, /dev and /proc from the host, working directory /var/lib/threatflow. Needs root
# (mount, unshare). Prints the command's output; exits with its status.
#
#   bash tests/image/readonly-run.sh IMAGE [ENV=VALUE ...] -- /usr/local/bin/threatflow ARGS...
set -euo pipefail
image="$1"
shift
environment=()
while [ "$1" != "--" ]; do
  environment+=("$1")
  shift
done
shift
buildah=(buildah --storage-driver vfs)
work="$(mktemp -d)"
container="$("${buildah[@]}" from -q "$image")"
mounts=()
cleanup() {
  for ((index = ${#mounts[@]} - 1; index >= 0; index--)); do umount -l "${mounts[index]}" 2>/dev/null || true; done
  "${buildah[@]}" umount "$container" >/dev/null 2>&1 || true
  "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
rootfs="$("${buildah[@]}" mount "$container")"
mkdir -p "$work/root" "$work/state" "$work/tmp"
chown 10001:10001 "$work/state"
chmod 1777 "$work/tmp"
mount --bind "$rootfs" "$work/root" && mounts+=("$work/root")
mount -o remount,bind,ro "$work/root"
mount --bind "$work/state" "$work/root/var/lib/threatflow" && mounts+=("$work/root/var/lib/threatflow")
mount --bind "$work/tmp" "$work/root/tmp" && mounts+=("$work/root/tmp")
mount --rbind /dev "$work/root/dev" && mounts+=("$work/root/dev")
mount -t proc proc "$work/root/proc" && mounts+=("$work/root/proc")
if touch "$work/root/etc/threatflow/probe" 2>/dev/null; then
  echo "readonly-run: the root filesystem is writable" >&2
  exit 3
fi
status=0
env -i ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  THREATFLOW_CONFIG=/etc/threatflow/threatflow.toml "${environment[@]}" \
  /usr/bin/unshare --root="$work/root" --wd=/var/lib/threatflow --setgid 10001 --setuid 10001 "$@" || status=$?
echo "readonly-run: state volume holds: $(cd "$work/state" && find . -mindepth 1 -maxdepth 2 | sort | head -20 | tr '\n' ' ')"
exit "$status"
