#!/usr/bin/env bash
# Build the target image localhost/sipguard-target:<suite> from Debian's mirror with
# debootstrap (no container registry is reachable). Cached by tag: an image whose
# recipe label matches this script's recipe is reused; otherwise it is rebuilt.
set -euo pipefail

suite=${1:?usage: build-image.sh SUITE (bullseye|bookworm|trixie) [sips|ssh|docker]}
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
  ssh) image=localhost/sipguard-target:$suite-ssh ;;
  docker) image=localhost/sipguard-target:$suite-docker ;;
  *) echo "build-image.sh: unknown profile '$profile' (none, sips, ssh or docker)" >&2; exit 2 ;;
esac
# Everything the scenarios need inside a target: python3 for Ansible, ufw and both
# iptables backends, iproute2 for addresses, procps for ps/pgrep, strace for the
# process-count benchmark.
packages=python3,ufw,iptables,iproute2,procps,ca-certificates,strace
# The sips profile adds a real SIP-over-TLS server (Debian's kamailio) and openssl for its certificate.
[ "$profile" = sips ] && packages=$packages,kamailio,kamailio-tls-modules,openssl
# The ssh profile adds an SSH server: targets managed over SSH, as in production. Its
# entry point authorises the key mounted at /etc/sipguard/authorized_keys and runs sshd.
# It also has sudo and an unprivileged user `ops` (sudo without a password, the same key), as
# most fleets are managed.
[ "$profile" = ssh ] && packages=$packages,openssh-server,sudo
# The docker profile adds Debian's docker.io (dockerd, containerd, runc): dockerd runs inside a
# privileged test container (tests/faults/test_docker.py), never on the machine itself.
[ "$profile" = docker ] && packages=$packages,docker.io
cmd='["sleep", "infinity"]'
[ "$profile" = ssh ] && cmd='["/usr/local/sbin/sipguard-sshd"]'
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
if [ "$profile" = ssh ]; then
  # Every container gets its own host keys at start, not the ones made at build time.
  rm -f "$rootfs"/etc/ssh/ssh_host_*
  chroot "$rootfs" useradd --create-home --shell /bin/sh ops
  echo 'ops ALL=(ALL) NOPASSWD:ALL' > "$rootfs/etc/sudoers.d/ops"
  chmod 440 "$rootfs/etc/sudoers.d/ops"
  cat > "$rootfs/usr/local/sbin/sipguard-sshd" <<'INIT'
#!/bin/sh
# Entry point of the ssh profile: authorise the public key mounted at
# /etc/sipguard/authorized_keys (or given in SIPGUARD_AUTHORIZED_KEY), make host
# keys, run sshd in the foreground.
set -e
mkdir -p /root/.ssh /run/sshd
chmod 700 /root/.ssh
if [ -r /etc/sipguard/authorized_keys ]; then
  cat /etc/sipguard/authorized_keys > /root/.ssh/authorized_keys
else
  printf '%s\n' "${SIPGUARD_AUTHORIZED_KEY:?no key: mount /etc/sipguard/authorized_keys}" > /root/.ssh/authorized_keys
fi
chmod 600 /root/.ssh/authorized_keys
mkdir -p /home/ops/.ssh
cp /root/.ssh/authorized_keys /home/ops/.ssh/authorized_keys
chown -R ops:ops /home/ops/.ssh
chmod 700 /home/ops/.ssh
ssh-keygen -A > /dev/null
exec /usr/sbin/sshd -D -e
INIT
  chmod 755 "$rootfs/usr/local/sbin/sipguard-sshd"
fi
tar -C "$rootfs" -c . | podman import \
  --change "CMD $cmd" \
  --change "STOPSIGNAL SIGKILL" \
  --change "LABEL sipguard.recipe=$recipe" \
  - "$image" > /dev/null 2>&1
echo "built $image in $(( $(date +%s) - start )) s"
