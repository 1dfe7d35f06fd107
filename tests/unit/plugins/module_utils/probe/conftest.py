# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures of the probe tests: a certificate, and a server-side TLS context with one."""

from __future__ import annotations

import datetime
import ssl

import pytest

from cryptography.hazmat.primitives import serialization

from ansible_collections.sipguard.firewall.tests.unit.plugins.module_utils.probe.certificates import NOW, make_certificate


@pytest.fixture(scope="module")
def certificate():
    return make_certificate(NOW + datetime.timedelta(days=30, hours=1))[0]


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory):
    """A server-side TLS context with a certificate valid for 30 more days (from the real now)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    certificate, key = make_certificate(now + datetime.timedelta(days=30, hours=1))
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    server_names = []
    context.sni_callback = lambda sslobj, name, ctx: server_names.append(name)
    return context, certificate, server_names
