# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The certificate describer, with cryptography and with the ssl module's decoder."""

from __future__ import annotations

import datetime

import pytest

from cryptography.hazmat.primitives import serialization

from ansible_collections.sipguard.firewall.plugins.module_utils._probe import certificate as probe_certificate
from ansible_collections.sipguard.firewall.plugins.module_utils._probe.certificate import describe_certificate
from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.certificates import NOW, make_certificate


@pytest.mark.parametrize("use_cryptography", [True, False], ids=["cryptography", "ssl-decoder"])
def test_describe_certificate(certificate, use_cryptography):
    der = certificate.public_bytes(serialization.Encoding.DER)
    described = describe_certificate(der, now=NOW, use_cryptography=use_cryptography)
    assert described["error"] is None
    assert described["decoder"] == ("cryptography" if use_cryptography else "ssl")
    assert described["subject"] == "CN=sip.test,O=sipguard test,C=ZZ"
    assert described["issuer"] == "CN=sip.test,O=sipguard test,C=ZZ"
    assert described["self_issued"] is True
    assert described["san"] == ["DNS:sip.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert described["not_after"] == "2026-03-31T13:00:00Z"
    assert described["not_before"] == "2025-12-31T13:00:00Z"
    assert described["days_left"] == 30
    assert described["serial"] == "5061ABCDEF"
    assert len(described["sha256"]) == 64


def test_describe_expired_certificate_has_negative_days_left():
    expired, _key = make_certificate(NOW - datetime.timedelta(days=3, hours=1), common_name="old, expired")
    der = expired.public_bytes(serialization.Encoding.DER)
    for use_cryptography in (True, False):
        described = describe_certificate(der, now=NOW, use_cryptography=use_cryptography)
        assert described["days_left"] == -4
        assert described["subject"] == r"CN=old\, expired,O=sipguard test,C=ZZ"


@pytest.mark.parametrize("use_cryptography", [True, False])
def test_describe_garbage_certificate_reports_an_error(use_cryptography):
    described = describe_certificate(b"\x30\x03\x02\x01\x00", now=NOW, use_cryptography=use_cryptography)
    assert described["error"].startswith("cannot decode the certificate (")
    assert ("cryptography: " in described["error"]) is use_cryptography and "ssl: " in described["error"]
    assert described["subject"] is None and described["days_left"] is None and described["decoder"] is None
    assert len(described["sha256"]) == 64


def test_describe_falls_back_to_the_ssl_decoder_when_cryptography_fails(certificate, monkeypatch):
    def broken(der, now):
        raise TypeError("load_der_x509_certificate() missing 1 required positional argument: 'backend'")

    monkeypatch.setattr(probe_certificate, "_describe_with_cryptography", broken)
    der = certificate.public_bytes(serialization.Encoding.DER)
    described = describe_certificate(der, now=NOW, use_cryptography=True)
    assert (described["decoder"], described["error"], described["days_left"]) == ("ssl", None, 30)
