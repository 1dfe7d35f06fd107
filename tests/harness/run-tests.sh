#!/usr/bin/env bash
# The whole test suite, in order: setup (installs what is missing), ansible-lint,
# ansible-test sanity, unit tests, molecule scenarios, the audit through ansible-runner,
# fault injection against real UFW in containers, random UFW states against the network
# (differential). Prints the time of each stage.
# Stop at the first failing stage. `run-tests.sh STAGE...` runs only those stages.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CONTAINERS_CONF=$root/tests/harness/containers.conf
export PATH=$root/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$root/build
export PYTHONPATH=$root/build
# ansible-rulebook's rule engine (stage eda) runs on Java 17 (tests/harness/setup.sh installs it).
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1

# build/ansible_collections/sipguard/firewall -> the repository, so Ansible and pytest
# import the collection by its real name without installing it.
mkdir -p build/ansible_collections/sipguard
ln -sfn ../../.. build/ansible_collections/sipguard/firewall

stage_setup() { tests/harness/setup.sh; }
stage_lint() {
  ansible-lint --profile production
  antsibull-changelog lint
  python tests/harness/role_docs.py --check  # roles/sips/README.md is generated from the argument spec
}
stage_build() {
  # The collection must build and install from its tarball, as users get it.
  rm -rf build/dist build/installed
  ansible-galaxy collection build --force --output-path build/dist .
  ansible-galaxy collection install --offline --force -p build/installed build/dist/sipguard-firewall-*.tar.gz
  ANSIBLE_COLLECTIONS_PATH=$root/build/installed ansible-galaxy collection list sipguard.firewall
  # Every module's documentation renders from the installed collection (what ansible-doc users see).
  local module
  for module in plugins/modules/*.py; do
    module=$(basename "$module" .py)
    ANSIBLE_COLLECTIONS_PATH=$root/build/installed ansible-doc "sipguard.firewall.$module" > /dev/null
  done
  local filter
  for filter in plugins/filter/*.py; do
    filter=$(basename "$filter" .py)
    ANSIBLE_COLLECTIONS_PATH=$root/build/installed ansible-doc -t filter "sipguard.firewall.$filter" > /dev/null
  done
  # The role's argument spec renders too (it is the role's documentation).
  ANSIBLE_COLLECTIONS_PATH=$root/build/installed ansible-doc -t role sipguard.firewall.sips > /dev/null
}
stage_sanity() { tests/harness/sanity.sh; }
# Test counts per stage, summed into the closing line (pytest's own summary, one per
# passed molecule scenario).
counts=$root/build/test-counts
rm -rf "$counts" && mkdir -p "$counts"
pytest_counted() {  # NAME [PYTEST ARGS...]
  local name=$1; shift
  python -m pytest -q "$@" | tee "$counts/pytest-$name.txt"
}
stage_unit() { pytest_counted unit; }
stage_molecule() {
  # Scenarios are independent (own containers, own ephemeral dirs), and most of their time
  # is waiting on containers and probe timeouts, so a few run at once. Each one's output
  # goes to build/molecule/<scenario>.log; a failing scenario's log tail is printed.
  local jobs=${SIPGUARD_MOLECULE_JOBS:-3} scenarios=()
  local config
  for config in molecule/*/molecule.yml; do
    scenarios+=("$(basename "$(dirname "$config")")")
  done
  mkdir -p build/molecule
  # shellcheck disable=SC2016  # the inner script expands its own variables
  printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c '
    start=$(date +%s)
    if molecule test -s "$1" > "build/molecule/$1.log" 2>&1; then
      echo "--- molecule $1: passed in $(( $(date +%s) - start )) s"
      echo "1 passed" > "build/test-counts/molecule-$1.txt"
    else
      echo "--- molecule $1: FAILED after $(( $(date +%s) - start )) s; last lines of build/molecule/$1.log:"
      tail -n 60 "build/molecule/$1.log"
      exit 1
    fi' _ {}
}

stage_awx() { pytest_counted awx tests/awx; }
stage_faults() { pytest_counted faults tests/faults; }
# Alerts and metrics against Debian's real promtool, node_exporter and Alertmanager on loopback.
stage_monitoring() { pytest_counted monitoring tests/monitoring; }
# The keep_closed rulebook: the port_state source's unit tests, then ansible-rulebook against real UFW.
stage_eda() { pytest_counted eda tests/eda; }
# Random UFW states (seed printed; SIPGUARD_DIFF_SEED/COUNT/ONLY repeat a run): the modules'
# verdicts against what a prober container reaches. The suite runs a fixed seed whose 200 states
# all agree (a regression fails it the same way every time); `make differential` alone draws a
# new seed each run, to find the next disagreement (docs/reliability.md).
stage_differential() {
  if [ "$suite_run" = 1 ] && [ -z "${SIPGUARD_DIFF_SEED:-}" ]; then
    export SIPGUARD_DIFF_SEED=20261202
  fi
  pytest_counted differential tests/differential
}

stages=("$@")
suite_run=0  # 1: the whole suite (make test), which runs the differential test at its fixed seed
[ ${#stages[@]} -gt 0 ] || { stages=(setup lint build sanity unit molecule awx faults monitoring eda differential); suite_run=1; }
timings=()
for stage in "${stages[@]}"; do
  declare -F "stage_$stage" >/dev/null || { echo "run-tests: unknown stage '$stage'" >&2; exit 2; }
  echo "=== $stage"
  start=$(date +%s)
  # A subshell outside any `if`, so `set -e` holds inside the stage's function.
  set +e; ( set -e; "stage_$stage" ); status=$?; set -e
  if [ $status -ne 0 ]; then
    echo "=== $stage FAILED (exit $status) after $(( $(date +%s) - start )) s" >&2
    exit $status
  fi
  timings+=("$(printf '%-9s %4d s' "$stage" "$(( $(date +%s) - start ))")")
done
echo "=== stage times"
printf '%s\n' "${timings[@]}"
# Reached only when every stage passed: the total of what ran.
passed=$( { cat "$counts"/*.txt 2>/dev/null || true; } | { grep -oE '[0-9]+ passed' || true; } \
  | awk '{n += $1} END {print n + 0}')
echo "suite: $passed passed, 0 failed"
