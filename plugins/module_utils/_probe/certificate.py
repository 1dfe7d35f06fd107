# -*- coding: utf-8 -*-
# Copyright (c) 2026, sipguard maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Certificates, pure: the X.509 description of a record's tls{}, and the TLS client context.

Private to the sipguard.firewall collection: no compatibility promise outside it.

Nothing is verified: this is discovery. ``cryptography`` decodes certificates when it is
importable, otherwise the ssl module's own decoder; a certificate neither can read is described
by its fingerprint and an error, never by an exception.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import tempfile

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
except ImportError:  # pragma: no cover - exercised through HAS_CRYPTOGRAPHY=False in the tests
    x509 = None
    ExtensionOID = None
HAS_CRYPTOGRAPHY = x509 is not None

# ssl.getpeercert() attribute names -> RFC 4514 short names (what cryptography prints).
RDN_SHORT_NAMES = {
    "commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}
SAN_PREFIXES = {"DNS": "DNS", "IP Address": "IP", "email": "email", "URI": "URI", "DirName": "DirName"}


def _utc(moment):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _iso(moment):
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_left(not_after, now):
    return int((_utc(not_after) - _utc(now)).total_seconds() // 86400)


def _escape_rdn_value(value):
    escaped = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and len(escaped) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped


def format_ssl_name(rdns):
    """An ssl.getpeercert()-style name (tuple of RDNs) as an RFC 4514 string, last RDN first."""
    parts = []
    for rdn in reversed(rdns or ()):
        parts.append("+".join("%s=%s" % (RDN_SHORT_NAMES.get(attr, attr), _escape_rdn_value(value))
                              for attr, value in rdn))
    return ",".join(parts)


def _describe_with_cryptography(der, now):
    cert = x509.load_der_x509_certificate(der)
    not_before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
    san = []
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        extension = None
    if extension is not None:
        for name in extension.value:
            if isinstance(name, x509.DNSName):
                san.append("DNS:" + name.value)
            elif isinstance(name, x509.IPAddress):
                san.append("IP:" + str(name.value))
            elif isinstance(name, x509.RFC822Name):
                san.append("email:" + name.value)
            elif isinstance(name, x509.UniformResourceIdentifier):
                san.append("URI:" + name.value)
            elif isinstance(name, x509.DirectoryName):
                san.append("DirName:" + name.value.rfc4514_string())
            else:
                san.append("othername:" + type(name).__name__)
    subject = cert.subject.rfc4514_string()
    issuer = cert.issuer.rfc4514_string()
    return {
        "subject": subject,
        "issuer": issuer,
        "san": san,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "days_left": _days_left(not_after, now),
        "serial": "%X" % cert.serial_number,
        "self_issued": cert.subject == cert.issuer,
    }


def _decode_with_ssl(der):
    """Decode DER with the ssl module's own (private, CPython-only) decoder, via a temp file."""
    decoder = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decoder is None:
        raise ValueError("this Python's ssl module has no certificate decoder")
    handle, path = tempfile.mkstemp(prefix="sipguard-cert-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as pem:
            pem.write(ssl.DER_cert_to_PEM_cert(der))
        return decoder(path)
    finally:
        os.unlink(path)


def _describe_with_ssl(der, now):
    decoded = _decode_with_ssl(der)
    not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]),
                                                datetime.timezone.utc)
    not_before = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notBefore"]),
                                                 datetime.timezone.utc)
    san = []
    for kind, value in decoded.get("subjectAltName", ()):
        value = value.strip()
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                pass
        san.append("%s:%s" % (SAN_PREFIXES.get(kind, kind), value))
    return {
        "subject": format_ssl_name(decoded.get("subject")),
        "issuer": format_ssl_name(decoded.get("issuer")),
        "san": san,
        "not_before": _iso(not_before),
        "not_after": _iso(not_after),
        "days_left": _days_left(not_after, now),
        "serial": decoded.get("serialNumber"),
        "self_issued": decoded.get("subject") == decoded.get("issuer"),
    }


CERTIFICATE_FIELDS = ("subject", "issuer", "san", "not_before", "not_after", "days_left", "serial",
                      "self_issued")


def describe_certificate(der, now=None, use_cryptography=None):
    """Describe a DER certificate without verifying it: subject, issuer, SANs, validity.

    Uses cryptography when importable (or when use_cryptography says so), and the ssl
    module's decoder otherwise or when cryptography fails. Never raises: a certificate
    neither can read comes back with its SHA-256 fingerprint and an ``error``.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if use_cryptography is None:
        use_cryptography = HAS_CRYPTOGRAPHY
    description = dict.fromkeys(CERTIFICATE_FIELDS)
    description.update(sha256=hashlib.sha256(der).hexdigest(), decoder=None, error=None)
    decoders = [("ssl", _describe_with_ssl)]
    if use_cryptography:  # the ssl decoder stays as the fallback (an old cryptography, say)
        decoders.insert(0, ("cryptography", _describe_with_cryptography))
    problems = []
    for name, decode in decoders:
        try:
            description.update(decode(der, now), decoder=name)
        except Exception as exc:  # pylint: disable=broad-except
            # a hostile or broken certificate must not end the run
            problems.append("%s: %s" % (name, exc))
        else:
            return description
    description["error"] = "cannot decode the certificate (%s)" % "; ".join(problems)
    return description


def make_tls_context():
    """A client context for discovery: no verification, and old protocol versions allowed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:  # report a TLS 1.0 server as what it is rather than as a handshake failure
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError, AttributeError):
        pass
    return context
