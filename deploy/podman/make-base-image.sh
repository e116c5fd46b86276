#!/usr/bin/env bash
# Makes a Debian bookworm base image from Debian's own packages, for machines that cannot pull
# python:3.11-slim: `debootstrap --variant=minbase`, Python 3.11 from python3 + python3-venv,
# and a virtualenv at /opt/venv first on PATH, so `python` and `pip` behave as in the official
# image (pip installs into that prefix; Debian's own Python refuses `pip install`, PEP 668).
#
#   deploy/podman/make-base-image.sh IMAGE        e.g. localhost/taxi-ct/debian-base:bookworm
#
# Root only (debootstrap, chroot). DEBIAN_MIRROR overrides the mirror. Takes about 4 minutes.
set -euo pipefail

image=${1:?usage: make-base-image.sh IMAGE}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /var/tmp/taxi-base-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }

# Security and point-release updates too, as the official image has them.
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF

# apt keeps no package caches in image layers (the official Debian image's docker-clean).
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF

chroot "$rootfs" /usr/bin/python3 -m venv /opt/venv
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*

if ! out=$(tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image" 2>&1); then
  echo "$out" >&2
  exit 1
fi
