# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What changed since the last round of the watch: the probe's records per endpoint (host,
address, protocol) against the state, the events for each change, and which hosts to close again
now (one heal event for all of them). Pure.

Private to the sipguard.firewall collection: no compatibility promise outside it.
"""

from __future__ import annotations

import datetime


KINDS = ("reopened", "closed", "exposed", "certificate_changed")
HEAL = "heal"


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def endpoint_key(host, address, protocol, port):
    return "%s|%s|%s|%d" % (host, address, protocol, port)


def observations(records, hosts_by_target):
    """{key: observation} from the probe's records: one per host, address and protocol."""
    seen = {}
    for record in records:
        if record.get("address") is None:  # the name did not resolve: nothing to compare
            continue
        tls = record.get("tls") or {}
        sip = record.get("sip") or {}
        for host in hosts_by_target.get(record["target"], ()):
            key = endpoint_key(host, record["address"], record["protocol"], record["port"])
            seen[key] = {
                "host": host, "target": record["target"], "address": record["address"],
                "family": record["family"], "protocol": record["protocol"], "port": record["port"],
                "state": record["state"], "error": record.get("error"),
                "tls_subject": tls.get("subject"), "tls_sha256": tls.get("sha256"),
                "tls_not_after": tls.get("not_after"),
                "sip_status": ("%s %s" % (sip.get("status_code"), sip.get("reason") or "")).strip() if sip else None,
                "sip_server": sip.get("server") or sip.get("user_agent") if sip else None,
            }
    return seen


def _is_open(state):
    """True open, False not open, None unknown (an error says nothing about the firewall)."""
    if state == "open":
        return True
    if state in ("closed", "filtered", "open|filtered"):
        return False
    return None


def _message(kind, obs, previous_state, previous_sha):
    where = "%s (%s, %s)" % (obs["host"], obs["address"], obs["family"])
    text = {
        "reopened": "%d/%s reopened on %s: %s -> open" % (obs["port"], obs["protocol"], where, previous_state),
        "closed": "%d/%s closed on %s: open -> %s" % (obs["port"], obs["protocol"], where, obs["state"]),
        "exposed": "%d/%s is exposed on %s (open when the watch started)" % (obs["port"], obs["protocol"], where),
        "certificate_changed": "%d/%s on %s answers with another TLS certificate (sha256 %s -> %s)" % (
            obs["port"], obs["protocol"], where, (previous_sha or "none")[:16], (obs["tls_sha256"] or "none")[:16]),
    }[kind]
    answered = []
    if obs["tls_subject"]:
        answered.append("TLS %s" % obs["tls_subject"])
    if obs["sip_server"]:
        answered.append("SIP server %s" % obs["sip_server"])
    elif obs["sip_status"]:
        answered.append("SIP %s" % obs["sip_status"])
    return text + ("; " + ", ".join(answered) if answered else "")


def diff(state, seen, now, heal_window, round_started=None, unresolved=()):
    """(new state, events) for one round: seen compared with state, pure.

    state is {"endpoints": {key: entry}, "hosts": {host: {"reopened_at": iso, "healed_at": iso,
    "heal_due": iso}}}; endpoints not seen in this round are dropped (no longer watched), so the
    state stays as large as the watch. round_started: when the round began; a reopening counts
    as flapping only when the host's last one came before it (not in an earlier part of this round).
    unresolved: targets whose name did not resolve this round; their endpoints and hosts are kept
    as they were (an error says nothing about the firewall, and must not reset a heal's throttle).
    """
    now_text = iso(now)
    old_endpoints = state.get("endpoints", {})
    old_hosts = state.get("hosts", {})
    endpoints, events, reopened_hosts = {}, [], set()
    for key, obs in seen.items():
        old = old_endpoints.get(key)
        open_now = _is_open(obs["state"])
        entry = dict(old) if old else {"first_seen": now_text, "changed_at": now_text, "open": None,
                                       "state": None, "tls_sha256": None}
        kind = None
        previous_state = entry.get("state")
        previous_sha = entry.get("tls_sha256")
        previous_last_seen = entry.get("last_seen")
        previous_changed_at = _parse_iso(entry.get("changed_at"))
        if open_now is not None:
            was_open = entry.get("open")
            if open_now and was_open is None:
                kind = "exposed"
            elif open_now and not was_open:
                kind = "reopened"
            elif was_open and not open_now:
                kind = "closed"
            elif open_now and was_open and obs["tls_sha256"] and previous_sha and obs["tls_sha256"] != previous_sha:
                kind = "certificate_changed"
            if kind:
                entry["changed_at"] = now_text
            entry.update(open=open_now, state=obs["state"])
            if open_now:
                entry["tls_sha256"] = obs["tls_sha256"] or entry.get("tls_sha256")
                entry["tls_subject"] = obs["tls_subject"] or entry.get("tls_subject")
                entry["sip_server"] = obs["sip_server"] or entry.get("sip_server")
        entry.update(host=obs["host"], target=obs["target"], last_seen=now_text, error=obs["error"])
        endpoints[key] = entry
        if kind is None:
            continue
        host = obs["host"]
        flapping = False
        if kind in ("reopened", "exposed"):
            before = _parse_iso((old_hosts.get(host) or {}).get("reopened_at"))
            flapping = (before is not None and (now - before).total_seconds() < heal_window
                        and (round_started is None or before < round_started))
            reopened_hosts.add(host)
        event = {
            "kind": kind, "host": host, "target": obs["target"], "address": obs["address"],
            "port": obs["port"], "protocol": obs["protocol"], "family": obs["family"],
            "state": obs["state"], "previous_state": previous_state, "exposed": bool(open_now),
            "first_seen": entry["first_seen"], "last_seen": now_text, "changed_at": entry["changed_at"],
            "previous_last_seen": previous_last_seen, "flapping": flapping,
            # How long it was open before it closed: a heal's own "closed" comes within seconds.
            "open_seconds": round((now - previous_changed_at).total_seconds(), 3)
            if kind == "closed" and previous_changed_at else None,
            "tls": {"subject": obs["tls_subject"], "sha256": obs["tls_sha256"],
                    "not_after": obs["tls_not_after"]} if obs["tls_sha256"] else None,
            "previous_tls_sha256": previous_sha if kind == "certificate_changed" else None,
            "sip": {"status": obs["sip_status"], "server": obs["sip_server"]} if obs["sip_status"] else None,
            "message": _message(kind, obs, previous_state, previous_sha),
        }
        events.append({"port_state": event, "meta": {"hosts": host}})
    unresolved = set(unresolved)
    for key, old in old_endpoints.items():
        if key not in endpoints and old.get("target") in unresolved:
            endpoints[key] = old
    watched_hosts = {obs["host"] for obs in seen.values()} | {entry.get("host") for entry in endpoints.values()}
    hosts = {host: dict(value) for host, value in old_hosts.items() if host in watched_hosts}
    for host in reopened_hosts:
        hosts.setdefault(host, {})["reopened_at"] = now_text
    # A stable order: the first event of a host is its most telling one.
    order = {kind: index for index, kind in enumerate(KINDS)}
    events.sort(key=lambda e: (e["port_state"]["host"], order[e["port_state"]["kind"]],
                               e["port_state"]["address"], e["port_state"]["protocol"]))
    return {"endpoints": endpoints, "hosts": hosts}, events


def diff_some(state, seen, now, heal_window, round_started):
    """diff over some endpoints of a round (those whose probe has answered so far, sent before
    the round's silent endpoints time out); the endpoints and hosts not in seen stay as they are,
    for the diff of the whole round."""
    part, events = diff(state, seen, now, heal_window, round_started)
    endpoints = dict(state.get("endpoints", {}))
    endpoints.update(part["endpoints"])
    hosts = dict(state.get("hosts", {}))
    hosts.update(part["hosts"])
    return {"endpoints": endpoints, "hosts": hosts}, events


def _open_hosts(endpoints):
    return {entry.get("host") for entry in endpoints.values() if entry.get("open")}


def heal(state, events, now, heal_window, port, round_started=None):
    """(new state, the heal event or None) for one round, after diff: pure.

    A host is healed (closed again) when it reopened or was exposed in this round, and again when
    it reopened within ``heal_window`` seconds of its last heal: then at the end of that window,
    if it is still open. So a host gets at most one heal per window, and a reopening inside the
    window is never left open. All hosts to heal in a round go into one event (one close run
    over all of them: ``meta.hosts`` is their list). A host that stays open after its heal (a
    rule outside UFW) is not healed again: only a new reopening asks for one.

    round_started: when the round began; a host healed since then (an earlier part of the same
    round: another of its endpoints answered first) is in that heal already - not deferred.
    """
    now_text = iso(now)
    hosts = {host: dict(value) for host, value in state.get("hosts", {}).items()}
    open_hosts = _open_hosts(state.get("endpoints", {}))
    asked = {event["port_state"]["host"] for event in events
             if event["port_state"]["kind"] in ("reopened", "exposed")}
    due = {host for host, value in hosts.items()
           if value.get("heal_due") and (_parse_iso(value["heal_due"]) or now) <= now}
    batch, deferred = [], []
    for host in sorted(asked | due):
        entry = hosts.setdefault(host, {})
        if host not in open_hosts:  # closed in the meantime: nothing to heal
            entry.pop("heal_due", None)
            continue
        last = _parse_iso(entry.get("healed_at"))
        if last is not None and round_started is not None and last >= round_started and host in asked:
            continue  # healed in an earlier part of this round
        if last is None or (now - last).total_seconds() >= heal_window:
            batch.append(host)
            entry["healed_at"] = now_text
            entry.pop("heal_due", None)
        else:
            entry["heal_due"] = iso(last + datetime.timedelta(seconds=heal_window))
            deferred.append(host)
    new_state = dict(state, hosts=hosts)
    if not batch:
        return new_state, None
    after_window = sorted(host for host in batch if host in due)
    event = {
        "kind": HEAL, "hosts": batch, "port": port, "changed_at": now_text,
        "after_window": after_window, "deferred": sorted(deferred),
        "message": "closing %d again on %d host%s: %s%s" % (
            port, len(batch), "" if len(batch) == 1 else "s", ", ".join(batch),
            "; %s reopened within %gs of the last heal" % (", ".join(after_window), heal_window)
            if after_window else ""),
    }
    return new_state, {"port_state": event, "meta": {"hosts": batch}}
