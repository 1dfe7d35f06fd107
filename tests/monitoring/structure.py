# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What each receiver documents about the body it takes, as checks: a list of problems, empty when
the body is what the receiver expects. Used on the bodies the functions build (unit tests) and on
the bodies a local receiver captured from a real run of the role (tests/monitoring).

- Slack incoming webhooks ("Sending messages using incoming webhooks", Block Kit reference):
  a JSON object with ``text`` and optional ``blocks``; at most 50 blocks; a ``header`` holds
  ``plain_text`` of at most 150 characters; a ``section``'s ``text`` is ``mrkdwn`` or ``plain_text``
  of at most 3000 characters; a ``context`` holds at most 10 elements; ``&``, ``<`` and ``>`` in
  mrkdwn are written ``&amp;``, ``&lt;``, ``&gt;``.
- Microsoft Teams Workflows ("Post to a channel when a webhook request is received"): a JSON object
  ``{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
  "contentUrl": null, "content": <Adaptive Card>}]}``; the card has ``type: AdaptiveCard``, a
  ``version`` Teams renders (1.0-1.5), ``$schema``, and a ``body`` of elements (``TextBlock`` with a
  string ``text``, ``FactSet`` with ``facts`` of ``title``/``value`` strings); the whole message stays
  under Teams' 28 KB message limit.
- Alertmanager API v2 (``POST /api/v2/alerts``, api/v2/openapi.yaml ``postableAlerts``): a JSON list of
  objects with ``labels`` (a non-empty map of strings, label names ``[a-zA-Z_][a-zA-Z0-9_]*``),
  optional ``annotations`` (map of strings), ``startsAt``/``endsAt`` (RFC 3339 date-times),
  ``generatorURL``.
"""

from __future__ import annotations

import datetime
import json
import re

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RAW_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def _unescaped(text):
    """Whether mrkdwn text has a raw <, > or & (these bodies hold no links or mentions)."""
    return "<" in text or ">" in text or bool(RAW_AMPERSAND.search(text))


def _rfc3339(value):
    try:
        datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return bool(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", str(value)))
    except ValueError:
        return False


def slack_problems(body):
    problems = []
    if not isinstance(body, dict):
        return ["not a JSON object"]
    if not isinstance(body.get("text"), str) or not body["text"]:
        problems.append("text is missing (the notification's fallback)")
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        problems.append("blocks is not a list of at most 50")
        return problems
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not isinstance(text.get("text"), str) or len(text["text"]) > 150:
                problems.append("block %d: a header needs plain_text of at most 150 characters" % index)
        elif kind == "section":
            text = block.get("text") or {}
            if text.get("type") not in ("mrkdwn", "plain_text") or not isinstance(text.get("text"), str) \
                    or not 1 <= len(text["text"]) <= 3000:
                problems.append("block %d: a section needs mrkdwn/plain_text of 1-3000 characters" % index)
            elif text["type"] == "mrkdwn" and _unescaped(text["text"]):
                problems.append("block %d: &, < or > not escaped in mrkdwn: %r" % (index, text["text"]))
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append("block %d: a context needs 1-10 elements" % index)
            for element in elements or []:
                if element.get("type") not in ("mrkdwn", "plain_text") or not isinstance(element.get("text"), str):
                    problems.append("block %d: a context element needs text" % index)
        elif kind != "divider":
            problems.append("block %d: unexpected block type %r" % (index, kind))
    return problems


def teams_problems(body):
    problems = []
    if not isinstance(body, dict) or body.get("type") != "message":
        return ["not a message object (type: message)"]
    if len(json.dumps(body).encode()) > 28 * 1024:
        problems.append("larger than Teams' 28 KB message limit")
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return problems + ["attachments must hold the one card"]
    attachment = attachments[0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("contentType is not application/vnd.microsoft.card.adaptive")
    if "contentUrl" not in attachment or attachment["contentUrl"] is not None:
        problems.append("contentUrl must be null")
    card = attachment.get("content") or {}
    if card.get("type") != "AdaptiveCard":
        problems.append("content is not an AdaptiveCard")
    if card.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        problems.append("card version %r is not one Teams renders" % card.get("version"))
    if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
        problems.append("$schema is missing")
    elements = card.get("body")
    if not isinstance(elements, list) or not elements:
        return problems + ["the card has no body"]
    for index, element in enumerate(elements):
        if element.get("type") == "TextBlock":
            if not isinstance(element.get("text"), str) or not element["text"]:
                problems.append("element %d: a TextBlock needs text" % index)
        elif element.get("type") == "FactSet":
            facts = element.get("facts")
            if not isinstance(facts, list) or not facts or not all(
                    isinstance(fact.get("title"), str) and isinstance(fact.get("value"), str) for fact in facts):
                problems.append("element %d: a FactSet needs facts of title/value strings" % index)
        else:
            problems.append("element %d: unexpected element %r" % (index, element.get("type")))
    return problems


def alertmanager_problems(body):
    problems = []
    if not isinstance(body, list) or not body:
        return ["not a non-empty JSON list of alerts"]
    for index, alert in enumerate(body):
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels:
            problems.append("alert %d: labels missing" % index)
            continue
        for name, value in labels.items():
            if not LABEL_NAME.match(name) or not isinstance(value, str) or not value:
                problems.append("alert %d: label %r=%r is not a Prometheus label" % (index, name, value))
        for name, value in (alert.get("annotations") or {}).items():
            if not isinstance(value, str):
                problems.append("alert %d: annotation %r is not a string" % (index, name))
        for key in ("startsAt", "endsAt"):
            if key in alert and not _rfc3339(alert[key]):
                problems.append("alert %d: %s %r is not RFC 3339" % (index, key, alert[key]))
        unknown = set(alert) - {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        if unknown:
            problems.append("alert %d: fields Alertmanager does not take: %s" % (index, sorted(unknown)))
    return problems


PROBLEMS = dict(slack=slack_problems, teams=teams_problems, alertmanager=alertmanager_problems)
