"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip into each sanity venv with a get-pip script fetched from a
host that is not reachable here; it first looks for a cached copy, so the harness puts
this file there. It installs pip from the interpreter's bundled wheel (ensurepip), then
runs pip with the arguments ansible-test passed (the pinned pip version from PyPI).
"""
import ensurepip
import os
import runpy
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

# ensurepip points PIP_CONFIG_FILE at /dev/null and drops other PIP_* settings; the
# install below needs the machine's pip configuration (index, certificates) back.
saved_environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
os.environ.clear()
os.environ.update(saved_environment)

pip_arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
sys.argv = ["pip", "install", *pip_arguments]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
