#!/usr/bin/env bash
# The dual-stack podman network the test containers join, so the host reaches them
# over IPv4 and IPv6. Owned by the harness (molecule's podman driver can only make
# IPv4 networks), created once and reused; `network.sh remove` deletes it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
name=${SIPGUARD_NETWORK:-sipguard-test}

case "${1:-create}" in
  create)
    if ! podman network exists "$name"; then
      podman network create --ipv6 --subnet 10.89.7.0/24 --subnet fd00:5061::/64 "$name" >/dev/null
      echo "created podman network $name (10.89.7.0/24, fd00:5061::/64)"
    fi ;;
  remove)
    podman network exists "$name" && podman network rm -f "$name" >/dev/null
    echo "removed podman network $name" ;;
  *) echo "usage: network.sh create|remove" >&2; exit 2 ;;
esac
