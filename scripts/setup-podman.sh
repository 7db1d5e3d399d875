#!/usr/bin/env bash
# Idempotent podman set-up for the agent's Docker containerizer tests (called by
# `scripts/setup.sh --system`, as root, after the Debian packages are installed).
#
# 1. Podman's defaults fail on these machines (no CAP_SYS_RESOURCE to raise rlimits; crun
#    refuses cgroup v1 hybrid): a containers.conf drop-in sets the working values.
#    Podman >= 4 reads /etc/containers/containers.conf.d/*.conf after containers.conf.
# 2. No image registry is reachable: the test image localhost/paddock-busybox:latest is
#    built from busybox-static when podman does not have it yet.
#
# Without root or without podman it says why and does nothing (exit 0): the container
# tests then skip with that reason.
set -euo pipefail

IMAGE=localhost/paddock-busybox:latest
DROPIN_DIR=/etc/containers/containers.conf.d
DROPIN=$DROPIN_DIR/paddock.conf

if ! command -v podman >/dev/null; then
  echo "setup-podman: podman is not installed; skipping" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-podman: not root; skipping (run as root to configure podman)" >&2
  exit 0
fi

want_conf='[containers]
# raising RLIMIT_NOFILE / RLIMIT_NPROC is not permitted on these machines
default_ulimits = []
pids_limit = 0

[engine]
# crun refuses cgroup v1 hybrid mode; runc with cgroupfs works
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'

mkdir -p "$DROPIN_DIR"
if [ ! -f "$DROPIN" ] || [ "$(cat "$DROPIN")" != "$want_conf" ]; then
  printf '%s\n' "$want_conf" >"$DROPIN"
  echo "setup-podman: wrote $DROPIN"
fi

if ! podman image exists "$IMAGE"; then
  busybox=""
  for b in /bin/busybox /usr/bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
  done
  if [ -z "$busybox" ]; then
    echo "setup-podman: no static busybox (install busybox-static); cannot build $IMAGE" >&2
    exit 1
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  root=$tmp/root
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www"
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for c in sh ash ls echo sleep cat httpd wget env printenv mkdir rm cp mv touch test \
    true false grep head tail ps kill id hostname printf seq yes dd nc ip ifconfig \
    date pwd wc sort uname df du mount stat find xargs tr sed awk timeout; do
    ln -sf busybox "$root/bin/$c"
  done
  echo "paddock-busybox" >"$root/www/index.html"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -cf "$tmp/rootfs.tar" .
  podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
    "$tmp/rootfs.tar" "$IMAGE" >/dev/null
  echo "setup-podman: built $IMAGE from $busybox"
fi
