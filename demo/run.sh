#!/usr/bin/env bash
# `make demo`: a local demo fleet of four containers, audited, closed and audited again
# with the collection's playbooks, exactly as a user runs them against real hosts.
#   sipguard-demo-sips      kamailio (SIP over TLS, self-signed cert) behind `ufw allow 5061`
#   sipguard-demo-range     a listener on 5061 behind `ufw allow 5000:6000/tcp` and `/udp`
#   sipguard-demo-inactive  a listener on 5061, UFW installed but inactive
#   sipguard-demo-closed    a listener on 5061, already closed with `ufw deny 5061`
# Prints the before/after table and where the HTML report is. Removes the containers at
# the end (SIPGUARD_DEMO_KEEP=1 keeps them; `make demo-clean` removes them later).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SIPGUARD_DEMO=1 "$root/tests/harness/setup.sh"
export CONTAINERS_CONF=$root/tests/harness/containers.conf
export PATH=$root/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$root/build ANSIBLE_NOCOLOR=1
mkdir -p build/ansible_collections/sipguard && ln -sfn ../../.. build/ansible_collections/sipguard/firewall
work=$root/build/demo
rm -rf "$work" && mkdir -p "$work"
hosts=(sips range inactive closed)

clean() { for host in "${hosts[@]}"; do podman rm -f "sipguard-demo-$host" >/dev/null 2>&1 || true; done; }
[ "${1:-}" = clean ] && { clean; echo "demo containers removed"; exit 0; }
[ "${SIPGUARD_DEMO_KEEP:-0}" = 1 ] || trap clean EXIT
clean

for host in "${hosts[@]}"; do
  image=localhost/sipguard-target:bookworm
  [ "$host" = sips ] && image=localhost/sipguard-target:bookworm-sips
  podman run -d --name "sipguard-demo-$host" --network sipguard-test \
    --cap-add NET_ADMIN --cap-add NET_RAW "$image" > /dev/null
done

in_host() { podman exec "sipguard-demo-$1" sh -c "$2"; }
listener() {
  podman cp tests/harness/listener.py "sipguard-demo-$1:/usr/local/bin/sipguard-test-listener"
  in_host "$1" 'setsid nohup python3 /usr/local/bin/sipguard-test-listener 5060 5061 8080 >/dev/null 2>&1 </dev/null &'
}
podman cp molecule/sips_server/files/kamailio.cfg sipguard-demo-sips:/etc/kamailio/sipguard.cfg
podman cp molecule/sips_server/files/sipguard-tls.cfg sipguard-demo-sips:/etc/kamailio/sipguard-tls.cfg
in_host sips 'openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=pbx.demo.test \
  -addext subjectAltName=DNS:pbx.demo.test -keyout /etc/kamailio/sipguard-key.pem \
  -out /etc/kamailio/sipguard-cert.pem >/dev/null 2>&1 && kamailio -f /etc/kamailio/sipguard.cfg -P /run/kamailio.pid >/dev/null 2>&1'
in_host sips 'ufw default deny incoming && ufw allow 5061 && ufw allow 8080/tcp && ufw --force enable' > /dev/null
listener range
in_host range 'ufw default deny incoming && ufw allow 5000:6000/tcp && ufw allow 5000:6000/udp && ufw --force enable' > /dev/null
listener inactive
listener closed
in_host closed 'ufw default allow incoming && ufw deny 5061 && ufw --force enable' > /dev/null

{
  echo "[demo]"
  for host in "${hosts[@]}"; do
    read -r v4 v6 < <(podman inspect "sipguard-demo-$host" \
      -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}')
    echo "sipguard-demo-$host sips_probe_targets='[\"$v4\", \"$v6\"]'"
  done
  echo
  echo "[demo:vars]"
  echo "ansible_connection=containers.podman.podman"
  echo "ansible_python_interpreter=/usr/bin/python3"
  echo "sips_report_dir=$work/report"
} > "$work/inventory.ini"
sleep 2  # let kamailio and the listeners come up

# Each run's full output goes to build/demo/<playbook>-<n>.log; shown here: the role's
# summary and the recap. A failing host does not stop the demo (its row says why).
runs=0
run() {
  runs=$((runs + 1))
  local log=$work/$1-$runs.log
  echo; echo "### ansible-playbook sipguard.firewall.$1 -i build/demo/inventory.ini   (log: $log)"
  ansible-playbook "sipguard.firewall.$1" -i "$work/inventory.ini" "${@:2}" > "$log" 2>&1 || true
  awk '/: Summary\]/ {show=1} /^PLAY RECAP/ {show=1} show && /^$/ {show=0} show' "$log"
}
run audit
cp "$work/report/sips-report.json" "$work/before.json"
run close
run audit
python3 demo/table.py "$work/before.json" "$work/report/sips-report.json"
echo
echo "HTML report: $work/report/sips-report.html"
