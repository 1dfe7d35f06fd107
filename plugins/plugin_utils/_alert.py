# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert bodies: one pure function per receiver, over the run's report (plugin_utils/_report).

``alert_body(fmt, report, new_exposed, resolved)`` is the one entry point: the role's alert task
posts what it returns. ``resolved_hosts`` says which hosts were exposed and are closed again (the
"resolved" notice). Nothing here does I/O; the same bodies serve the Event-Driven Ansible content.

- ``generic``: the collection's own JSON object (documented in the write_report module).
- ``slack``: an incoming-webhook message: ``text`` (the notification's fallback) plus ``blocks``
  (header, sections in mrkdwn, context) within Slack's documented limits.
- ``teams``: a Microsoft Teams Workflows ("Post to a channel when a webhook request is received")
  message: ``type: message`` with one Adaptive Card attachment.
- ``alertmanager``: Alertmanager's API v2 ``POST /api/v2/alerts`` list: one alert per exposed
  host, protocol and family (firing: no ``endsAt``), and for each host closed again one alert per
  protocol and family with ``endsAt`` so that whatever fired resolves.

The hosts an alert names as exposed (``exposed_records``) are those whose report record says
``exposed: true``: the ``exposed`` ones, and a host whose run failed or was unreachable while its
port is known to be open (a close refused by a rule outside UFW, say) - a failed close must not
be a silent one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

FORMATS = ("generic", "slack", "teams", "alertmanager")
SOURCE = "sipguard.firewall"
ALERTNAME = "SipsPortExposed"
SEVERITY = "critical"
FAMILIES = ("ipv4", "ipv6")
PROTOCOLS = ("tcp", "udp")
UNKNOWN = "any"  # protocol/family label of an exposure no reason names a protocol and family for
HOSTS_SHOWN = 20  # hosts written out in a chat message before "+N more" (Slack: 50 blocks at most)
REASONS_SHOWN = 3  # reasons per host in a chat message
SLACK_SECTION_LIMIT = 3000  # characters of a section's text (Slack's documented maximum)
SLACK_HEADER_LIMIT = 150
TEAMS_FACT_LIMIT = 600  # characters of a host's reasons in a Teams card (a message stays under 28 KB)
_PREFIX = re.compile(r"^(ipv4|ipv6)/(tcp|udp): ")


class AlertError(ValueError):
    """An alert that cannot be built; the message names the value."""


def resolved_hosts(report):
    """Hosts that were exposed and are closed now: an audit's ``newly_closed``, or a close that
    closed a host exposed before it. In hosts order."""
    names = []
    for record in report.get("hosts") or []:
        if record.get("status") != "closed":
            continue
        before = record.get("before") if isinstance(record.get("before"), Mapping) else {}
        if record.get("trend") == "newly_closed" or (report.get("mode") == "close" and before.get("exposed") is True):
            names.append(record["host"])
    return names


def exposed_pairs(record):
    """{(family, protocol): [reasons]} of an exposed host, from its reasons' ``FAMILY/PROTOCOL: `` prefix;
    an exposure no reason places is ``(any, any)``."""
    pairs = {}
    for reason in record.get("reasons") or []:
        match = _PREFIX.match(str(reason))
        key = (match.group(1), match.group(2)) if match else (UNKNOWN, UNKNOWN)
        pairs.setdefault(key, []).append(str(reason))
    return pairs or {(UNKNOWN, UNKNOWN): []}


def exposed_records(report):
    """The report's records of hosts exposed now: status exposed, or a failed or unreachable host
    whose port is known to be open (``exposed: true``). In hosts order."""
    return [record for record in report.get("hosts") or []
            if record.get("status") == "exposed" or record.get("exposed") is True]


def exposed_hosts(report):
    return [record["host"] for record in exposed_records(report)]


def _reasons(record):
    """A record's reasons; a failed host's error first when no reason says it."""
    reasons = [str(reason) for reason in record.get("reasons") or []]
    if record.get("status") in ("failed", "unreachable") and record.get("error") and \
            not any(str(record["error"]) in reason or reason in str(record["error"]) for reason in reasons):
        reasons.insert(0, "the run failed on the host: %s" % record["error"])
    return reasons


def _title(report, exposed, resolved):
    port = report.get("port")
    if exposed:
        return "SIPS port %s exposed on %d host%s" % (port, len(exposed), "" if len(exposed) == 1 else "s")
    return "SIPS port %s closed again on %d host%s" % (port, len(resolved), "" if len(resolved) == 1 else "s")


TREND_WORDS = {"reopened": "reopened", "still_exposed": "still exposed", "new": "new"}


def _trend_words(record):
    if record.get("status") == "failed":
        return "still exposed, the run failed on it"
    if record.get("status") == "unreachable":
        return "exposed, the host is unreachable"
    return TREND_WORDS.get(record.get("trend") or "", "exposed")


def _more(count):
    return "+%d more" % count if count > 0 else ""


def generic(report, new_exposed, resolved):
    """The collection's own body (the first release's keys; resolved_hosts, failed_exposed_hosts
    and reasons added)."""
    records = exposed_records(report)
    return dict(source=SOURCE, run_id=(report.get("run") or {}).get("id"), summary=report["summary_line"],
                counts=dict(report["counts"]), exposed_hosts=list(report["exposed_hosts"]),
                failed_exposed_hosts=[record["host"] for record in records if record.get("status") != "exposed"],
                new_exposed_hosts=list(new_exposed), reopened_hosts=list(report["reopened_hosts"]),
                resolved_hosts=list(resolved),
                reasons={record["host"]: _reasons(record) for record in records})


def _slack_escape(text):
    # Slack's mrkdwn needs exactly these three escaped (its "Formatting text" documentation).
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def slack(report, new_exposed, resolved):
    """Slack incoming webhook: text (fallback) + blocks."""
    exposed = exposed_records(report)
    title = _title(report, exposed, resolved)
    blocks = [dict(type="header", text=dict(type="plain_text", text=_cut(title, SLACK_HEADER_LIMIT)))]
    for record in exposed[:HOSTS_SHOWN]:
        reasons = [_slack_escape(reason) for reason in _reasons(record)]
        lines = ["*%s* \u2014 %s%s" % (_slack_escape(record["host"]), _trend_words(record),
                                       " (new since the last alert)" if record["host"] in new_exposed else "")]
        lines.extend("\u2022 %s" % reason for reason in reasons[:REASONS_SHOWN])
        if len(reasons) > REASONS_SHOWN:
            lines.append("\u2022 %s" % _more(len(reasons) - REASONS_SHOWN))
        blocks.append(dict(type="section", text=dict(type="mrkdwn", text=_cut("\n".join(lines),
                                                                              SLACK_SECTION_LIMIT))))
    if len(exposed) > HOSTS_SHOWN:
        blocks.append(dict(type="section", text=dict(type="mrkdwn", text="%s exposed hosts (see the report)"
                                                     % _more(len(exposed) - HOSTS_SHOWN))))
    if resolved:
        names = ", ".join(_slack_escape(name) for name in resolved[:HOSTS_SHOWN])
        blocks.append(dict(type="section", text=dict(type="mrkdwn", text=_cut(
            ":white_check_mark: *closed again:* %s%s" % (names, " " + _more(len(resolved) - HOSTS_SHOWN)
                                                          if len(resolved) > HOSTS_SHOWN else ""),
            SLACK_SECTION_LIMIT))))
    blocks.append(dict(type="context", elements=[dict(type="mrkdwn", text=_cut(_slack_escape(
        "%s \u00b7 %s run %s" % (report["summary_line"], report.get("mode"), (report.get("run") or {}).get("id"))),
        SLACK_SECTION_LIMIT))]))
    return dict(text="%s: %s" % (title, report["summary_line"]), blocks=blocks)


def teams(report, new_exposed, resolved):
    """Teams Workflows webhook: a message with one Adaptive Card (version 1.4)."""
    exposed = exposed_records(report)
    title = _title(report, exposed, resolved)
    body = [dict(type="TextBlock", text=title, size="Large", weight="Bolder", wrap=True,
                 color="Attention" if exposed else "Good"),
            dict(type="TextBlock", text=report["summary_line"], wrap=True, isSubtle=True)]
    if exposed:
        facts = []
        for record in exposed[:HOSTS_SHOWN]:
            reasons = _reasons(record)
            hidden = len(reasons) - REASONS_SHOWN
            value = "; ".join(reasons[:REASONS_SHOWN] + ([_more(hidden)] if hidden > 0 else []))
            facts.append(dict(title="%s (%s%s)" % (record["host"], _trend_words(record),
                                                   ", new" if record["host"] in new_exposed else ""),
                              value=_cut(value, TEAMS_FACT_LIMIT) or "exposed"))
        body.append(dict(type="FactSet", facts=facts))
        if len(exposed) > HOSTS_SHOWN:
            body.append(dict(type="TextBlock", text="%s exposed hosts (see the report)"
                             % _more(len(exposed) - HOSTS_SHOWN), wrap=True))
    if resolved:
        body.append(dict(type="TextBlock", wrap=True, color="Good", text="Closed again: %s%s" % (
            ", ".join(resolved[:HOSTS_SHOWN]),
            " " + _more(len(resolved) - HOSTS_SHOWN) if len(resolved) > HOSTS_SHOWN else "")))
    body.append(dict(type="TextBlock", wrap=True, isSubtle=True, size="Small",
                     text="%s %s run %s" % (SOURCE, report.get("mode"), (report.get("run") or {}).get("id"))))
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return dict(type="message", attachments=[dict(contentType="application/vnd.microsoft.card.adaptive",
                                                  contentUrl=None, content=card)])


def _labels(host, port, family, protocol):
    return dict(alertname=ALERTNAME, instance=str(host), port=str(port), protocol=protocol, family=family,
                severity=SEVERITY)


def alertmanager(report, new_exposed, resolved):
    """Alertmanager API v2: firing alerts for every exposed host/protocol/family of the run, and
    resolved ones (endsAt) for every protocol and family of each host closed again."""
    when = report["generated"]
    port = report.get("port")
    alerts = []
    for record in exposed_records(report):
        for (family, protocol), reasons in sorted(exposed_pairs(record).items()):
            alerts.append(dict(
                labels=_labels(record["host"], port, family, protocol),
                annotations=dict(
                    summary="%s/%s port %s is exposed on %s (%s)" % (
                        family, protocol, port, record["host"], _trend_words(record)),
                    reason="; ".join(reasons) or "; ".join(_reasons(record)) or "exposed",
                    trend=str(record.get("trend") or "")),
                startsAt=when))
    for host in resolved:
        for family in FAMILIES:
            for protocol in PROTOCOLS:
                alerts.append(dict(labels=_labels(host, port, family, protocol),
                                   annotations=dict(summary="port %s is closed again on %s" % (port, host),
                                                    reason="closed", trend="resolved"),
                                   startsAt=when, endsAt=when))
    return alerts


BUILDERS = dict(generic=generic, slack=slack, teams=teams, alertmanager=alertmanager)


def alert_body(fmt, report, new_exposed=(), resolved=()):
    """The body to POST for format fmt (one of FORMATS) about the run's report."""
    if fmt not in BUILDERS:
        raise AlertError("sips_alert_format must be one of %s, not %r" % (", ".join(FORMATS), fmt))
    if not isinstance(report, Mapping) or "summary_line" not in report:
        raise AlertError("an alert needs the run's report")
    return BUILDERS[fmt](report, list(new_exposed), list(resolved))
