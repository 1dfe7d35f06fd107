#!/usr/bin/env bash
# Build the target image localhost/sipguard-target:<suite> from Debian's mirror with
# debootstrap (no container registry is reachable). Cached by tag: an image whose
# recipe label matches this script's recipe is reused; otherwise it is rebuilt.
set -euo pipefail

suite=${1:?usage: build-image.sh SUITE (bullseye|bookworm|trixie) [sips]}
profile=${2:-}
case "$suite" in
  bullseye|bookworm|trixie) ;;
  *) echo "build-image.sh: unknown Debian suite '$suite' (bullseye, bookworm or trixie)" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
case "$profile" in
  "") image=localhost/sipguard-target:$suite ;;
  sips) image=localhost/sipguard-target:$suite-sips ;;
  *) echo "build-image.sh: unknown profile '$profile' (none or sips)" >&2; exit 2 ;;
esac
# Everything the scenarios need inside a target: python3 for Ansible, ufw and both
# iptables backends, iproute2 for addresses, procps for ps/pgrep, strace for the
# process-count benchmark.
packages=python3,ufw,iptables,iproute2,procps,ca-certificates,strace
# The sips profile adds a real SIP-over-TLS server (Debian's kamailio) and openssl for its certificate.
[ "$profile" = sips ] && packages=$packages,kamailio,kamailio-tls-modules,openssl
# Any change to this script (packages, steps) changes the recipe and rebuilds the image.
recipe=$( { echo "$suite $profile"; cat "$0"; } | sha256sum | cut -c1-16)

current=$(podman image inspect --format '{{ index .Labels "sipguard.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ]; then
  echo "image $image is up to date (recipe $recipe)"
  exit 0
fi

rootfs=$(mktemp -d /var/tmp/sipguard-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $image with debootstrap (about a minute)..."
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" \
      > "$rootfs.log" 2>&1; then
  echo "build-image.sh: debootstrap $suite failed; last lines of its log:" >&2
  tail -20 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
fi
rm -f "$rootfs.log"
# Keep the image small: apt caches are not needed at test time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["sleep", "infinity"]' \
  --change "STOPSIGNAL SIGKILL" \
  --change "LABEL sipguard.recipe=$recipe" \
  - "$image" > /dev/null 2>&1
echo "built $image in $(( $(date +%s) - start )) s"
