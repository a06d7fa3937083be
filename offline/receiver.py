"""An https stand-in for CloudFormation's presigned response URLs, on loopback.

CloudFormation hands every request an https ResponseURL and reads the answer
PUT there. This server plays that part for the demo and the tests: it makes a
self-signed certificate for 127.0.0.1 at start (its file is :attr:`cafile`, for
``SSL_CERT_FILE``), records every PUT body by URL, and can fail or stall the
first PUTs to prove the sender's retries are bounded.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from offline.loopback import LoopbackServer, LoopbackService


@dataclass(frozen=True)
class Put:
    path: str
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class ResponseReceiver(LoopbackService):
    scheme = "https"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._puts: list[Put] = []
        self._attempts: list[str] = []
        self._fail_next = 0
        self._fail_status = 503
        self._stall_next = 0
        self._stall_s = 0.0
        self._slow_next = 0
        self._slow_s = 0.0
        self._dir = tempfile.TemporaryDirectory(prefix="cfn-receiver-")
        self.cafile = str(Path(self._dir.name) / "cert.pem")

    def start(self) -> str:
        """Serve https on a free loopback port and return the base URL."""
        keyfile = _write_self_signed(Path(self.cafile), Path(self._dir.name) / "key.pem")
        receiver = self

        class Handler(_PutHandler):
            owner = receiver

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cafile, keyfile)
        self._server = LoopbackServer(Handler, "cfn-receiver", tls=context)
        return self.base_url

    @property
    def base_url(self) -> str:
        return self.url

    def stop(self) -> None:
        super().stop()
        self._dir.cleanup()

    def new_url(self) -> str:
        """A fresh presigned-looking URL, as CloudFormation gives one per request."""
        token = uuid.uuid4().hex
        return f"{self.base_url}/cfn-response/{token}?X-Amz-Signature=sig{token}&X-Amz-Credential=cred{token}"

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._fail_next, self._fail_status = count, status

    def stall_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` PUTs for ``seconds`` before answering (and recording nothing)."""
        with self._lock:
            self._stall_next, self._stall_s = count, seconds

    def slow_next(self, count: int, seconds: float) -> None:
        """Accept the next ``count`` PUTs only after ``seconds`` (recorded when accepted)."""
        with self._lock:
            self._slow_next, self._slow_s = count, seconds

    def reset(self) -> None:
        with self._lock:
            self._puts.clear()
            self._attempts.clear()
            self._fail_next = self._stall_next = self._slow_next = 0

    def puts(self, url: str | None = None) -> list[Put]:
        """Accepted PUTs, all or those to ``url``."""
        path = None if url is None else url[len(self.base_url) :]
        with self._lock:
            return [p for p in self._puts if path is None or p.path == path]

    def answer(self, url: str) -> dict[str, Any]:
        """The one body PUT to ``url``; fails if there was none or more than one."""
        puts = self.puts(url)
        if len(puts) != 1:
            raise AssertionError(f"expected exactly one answer, got {len(puts)}")
        body: dict[str, Any] = puts[0].json()
        return body

    def attempts(self, url: str) -> int:
        """How many PUTs reached ``url``, answered or not."""
        path = url[len(self.base_url) :]
        with self._lock:
            return self._attempts.count(path)

    def _take(self, path: str, body: bytes) -> tuple[int, float]:
        """The status to answer and how long to stall first (0: answer at once, status 0: never)."""
        with self._lock:
            self._attempts.append(path)
            if self._stall_next > 0:
                self._stall_next -= 1
                return 0, self._stall_s
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status, 0.0
            slow = 0.0
            if self._slow_next > 0:
                self._slow_next -= 1
                slow = self._slow_s
        if slow:
            time.sleep(slow)
        with self._lock:
            self._puts.append(Put(path, body, time.monotonic()))
        return 200, 0.0


class _PutHandler(BaseHTTPRequestHandler):
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs add 40 ms to every exchange on loopback.
    disable_nagle_algorithm = True
    owner: ResponseReceiver
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, stall = self.owner._take(self.path, body)
        if stall:
            time.sleep(stall)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the URL holds the (test) signature and tests read the record instead."""


def _write_self_signed(certfile: Path, keyfile: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(keyfile)
