"""A throw-away self-signed certificate for 127.0.0.1 and localhost, made with the openssl command.

(The `cryptography` package is not a dependency of itsmd or its tests, so the openssl binary makes it.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def make_cert(folder: Path) -> tuple[Path, Path]:
    """Writes cert.pem and key.pem (EC P-256, one day) into folder; fails the test without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed for the TLS tests: apt-get install openssl (scripts/test.sh does)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
