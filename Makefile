# The two commands a newcomer needs (see README.md): make demo, make test.
.PHONY: demo demo-clean test setup lint build sanity unit molecule awx faults monitoring eda differential clean bench-processes bench-probe-sweep bench-fleet bench-settings bench-memory bench-keep-closed

demo:            ## install what is missing, start a demo fleet, audit -> close -> audit, print the table
	demo/run.sh

demo-clean:      ## remove the demo fleet's containers
	demo/run.sh clean

test:            ## install what is missing, then lint, sanity, unit tests, molecule
	tests/harness/run-tests.sh

setup lint build sanity unit molecule awx faults monitoring eda differential:   ## one stage of `make test`
	tests/harness/run-tests.sh $@

# `make differential` alone: SIPGUARD_DIFF_SEED, SIPGUARD_DIFF_COUNT, SIPGUARD_DIFF_ONLY, SIPGUARD_DIFF_WORKERS
# (tests/differential/conftest.py) repeat a run or one state of it.

clean:           ## remove build output and the harness's test network (images stay cached)
	rm -rf build
	tests/harness/network.sh remove

bench-processes: setup  ## processes a close starts on a host: ufw_port vs ufw vs community.general.ufw
	CONTAINERS_CONF=$(CURDIR)/tests/harness/containers.conf .venv/bin/python bench/process_count.py

bench-probe-sweep: setup  ## port_probe over 1,000 loopback targets vs nmap -sT: wall time and peak memory
	.venv/bin/python bench/probe_sweep.py

bench-fleet: setup  ## close playbook vs a naive community.general.ufw playbook on fresh SSH container fleets
	CONTAINERS_CONF=$(CURDIR)/tests/harness/containers.conf .venv/bin/python bench/fleet.py

bench-settings: setup  ## where the close playbook's time goes per host and per batch; pipelining, forks, strategy, ControlPersist
	CONTAINERS_CONF=$(CURDIR)/tests/harness/containers.conf .venv/bin/python bench/settings.py

bench-memory: setup  ## controller memory and time of the audit playbook at N inventory hosts and several forks
	CONTAINERS_CONF=$(CURDIR)/tests/harness/containers.conf .venv/bin/python bench/controller_memory.py

bench-keep-closed: setup  ## keep_closed: seconds from reopen to event and to closed again; the watcher's CPU and memory
	CONTAINERS_CONF=$(CURDIR)/tests/harness/containers.conf PATH=$(CURDIR)/.venv/bin:$$PATH .venv/bin/python bench/keep_closed.py
