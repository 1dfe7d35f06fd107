#!/usr/bin/env bash
# Run `ansible-test sanity` on a clean ansible_collections/sipguard/firewall copy of the
# tracked files (ansible-test needs that path, and a tests/output/ holding venvs would
# fail its symlink and line-ending tests). The ignore files stay empty.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/.venv
tree=$root/build/sanity/ansible_collections/sipguard/firewall

# Offline pip bootstrap for ansible-test's per-test venvs (see get_pip_offline.py).
pip_version=$("$venv/bin/python" - <<'PY'
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version="3.11"))["pip"])
PY
)
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
cmp -s "$root/tests/harness/get_pip_offline.py" "$cache" 2>/dev/null \
  || cp "$root/tests/harness/get_pip_offline.py" "$cache"

rm -rf "$tree" && mkdir -p "$tree"
git -C "$root" ls-files -z --cached --others --exclude-standard \
  | tar -C "$root" --null -T - -cf - | tar -C "$tree" -xf -
cd "$tree"
# The copy lives under the repository's ignored build/; its own git index tells
# ansible-test which files are content (otherwise the outer repo marks all as ignored).
git init -q . && git add -A
"$venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
