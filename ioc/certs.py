"""A throwaway certificate authority and broker certificate for tests and trials (``ioc certs
dev``), and the dashboard's certificate for the reverse proxy signed by it (``ioc certs
dashboard``). Production brings its own: the broker reads ``ca.crt``, ``server.crt`` and
``server.key`` from the same folder, the proxy ``dashboard.crt`` and ``dashboard.key`` from
``deploy/proxy``, whoever made them."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ioc.folder_files import InFolder

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "mosquitto")  # mosquitto: the compose service name
DASHBOARD_HOSTS = ("localhost", "127.0.0.1")  # the name users type: give yours with --host


@dataclass(frozen=True, slots=True)
class CertFiles:
    folder: Path
    ca_cert = InFolder("ca.crt")
    ca_key = InFolder("ca.key")
    server_cert = InFolder("server.crt")
    server_key = InFolder("server.key")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IOC telemetry (development)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def make_dev_ca(
    folder: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 30
) -> CertFiles:
    """A new CA and a server certificate it signs for ``hosts`` (names or IP addresses)."""
    if days < 1:
        raise ValueError(f"--days must be at least 1, not {days}")
    if not hosts:
        raise ValueError("--host: the certificate needs at least one host name or address")
    folder.mkdir(parents=True, exist_ok=True)
    files = CertFiles(folder)
    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate small clock differences
    until = now + timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("IOC development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    _write_key(files.ca_key, ca_key)
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    sign_server_cert(files, files.server_cert, files.server_key, hosts, days=days)
    return files


def sign_server_cert(
    ca: CertFiles, cert: Path, key: Path, hosts: tuple[str, ...], *, days: int = 30
) -> None:
    """A server certificate for ``hosts``, signed by the CA in ``ca`` (the broker's, or the
    dashboard's behind the reverse proxy)."""
    if not hosts:
        raise ValueError("--host: the certificate needs at least one host name or address")
    if not ca.ca_key.exists():
        raise ValueError(f"no CA in {ca.folder} (ca.key): run `ioc certs dev` first")
    ca_cert = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.ca_key}: not the EC key `ioc certs dev` makes")
    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate small clock differences
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert.parent.mkdir(parents=True, exist_ok=True)
    _write_key(key, server_key)
    cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
