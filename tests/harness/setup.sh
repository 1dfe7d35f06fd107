#!/usr/bin/env bash
# Bring a machine to the point where the test suite can run, installing only what is
# missing: Debian packages (podman, runc, debootstrap), the pinned Python tools in .venv,
# the target container images and the dual-stack test network. Safe to re-run: each
# step is skipped when its result is already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
harness=$root/tests/harness
venv=$root/.venv
export CONTAINERS_CONF=${CONTAINERS_CONF:-$harness/containers.conf}
suites=${SIPGUARD_SUITES:-bookworm}

die() { echo "setup: $*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------
missing=()
for cmd_pkg in podman:podman runc:runc debootstrap:debootstrap strace:strace shellcheck:shellcheck chromium:chromium ssh:openssh-client \
    promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
    prometheus-node-exporter:prometheus-node-exporter; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
done
# ansible-rulebook (tests/eda: the keep_closed rulebook) runs its rule engine on Java 17.
java17=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)
[ -x "$java17/bin/java" ] || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them; install them by hand (Debian/Ubuntu packages of the same names)"
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: run as root (or install them with: sudo apt-get install -y ${missing[*]})"
  echo "setup: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: is Debian's package mirror reachable?"
  apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# --- Python tools, pinned in requirements-dev.txt ------------------------------------
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is $("$python" --version 2>&1); ansible-core 2.19 needs Python 3.11 or newer (set PYTHON=...)"
stamp=$venv/.requirements.sha256
want=$(cat "$root/requirements-dev.txt" "$root/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned Python tools into .venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" || die "could not create $venv (apt-get install python3-venv?)"
  "$venv/bin/python" -m pip install -q -r "$root/requirements-dev.txt" -r "$root/requirements.txt" \
    2> >(grep -v "^WARNING: Location '.*' is ignored" >&2) \
    || die "pip install of requirements-dev.txt failed: is PyPI reachable?"
  echo "$want" > "$stamp"
fi

# --- Target images and the test network ---------------------------------------------
# Built in parallel (debootstrap waits on the mirror more than on the CPU): the suites
# asked for, the target with a real SIP-over-TLS server (kamailio) for sips_server and
# role, the other Debian releases for the distros scenario (not for `make demo`, which
# sets SIPGUARD_DEMO=1) and a target managed over SSH.
builds=()
for suite in $suites; do builds+=("$suite"); done
builds+=("${suites%% *} sips")
if [ -z "${SIPGUARD_DEMO:-}" ]; then
  for suite in bullseye trixie; do
    case " $suites " in *" $suite "*) ;; *) builds+=("$suite") ;; esac
  done
  builds+=("${suites%% *} ssh")
  # Debian's docker.io (20.10 in bookworm) for the Docker-published port test.
  builds+=("bookworm docker")
fi
pids=()
for build in "${builds[@]}"; do
  # shellcheck disable=SC2086  # "SUITE [PROFILE]" splits into the script's arguments
  "$harness/build-image.sh" $build &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" -eq 0 ] || die "an image build failed (see its message above)"
# The key the ssh scenario and the fleet benchmark log in with (test containers only).
if [ ! -f "$root/build/ssh/id_ed25519" ]; then
  mkdir -p "$root/build/ssh"
  ssh-keygen -q -t ed25519 -N '' -C sipguard-test -f "$root/build/ssh/id_ed25519"
fi
"$harness/network.sh" create
