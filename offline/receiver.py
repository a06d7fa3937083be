"""An https stand-in for CloudFormation's presigned response URLs, on loopback.

CloudFormation hands every request an https ResponseURL and reads the answer
PUT there. This server plays that part for the demo and the tests: it makes a
self-signed certificate for 127.0.0.1 at start (its file is :attr:`cafile`, for
``SSL_CERT_FILE``), records every PUT body by URL, and takes the same fault
plan as the ElastiCache stand-in (:mod:`offline.faults`): failing, stalling or
slowing the first PUTs proves the sender's retries are bounded. Its URLs carry
no signing time unless asked (:class:`SigV4`, :class:`SigV2`), so a test can
deliver a request CloudFormation signed long ago.
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
from pathlib import Path
from typing import Any

from offline.faults import FaultPlan
from offline.loopback import LoopbackHandler, LoopbackServer, LoopbackService


@dataclass(frozen=True)
class Put:
    path: str
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class SigV4:
    """A ResponseURL signed as CloudFormation signs them today: ``X-Amz-Date`` (UTC) and ``X-Amz-Expires``."""

    signed_at: float  # epoch seconds
    expires_in: int = 7200

    def query(self, token: str) -> str:
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.signed_at))
        return (
            f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-SignedHeaders=host"
            f"&X-Amz-Expires={self.expires_in}&X-Amz-Credential=cred{token}&X-Amz-Signature=sig{token}"
        )


@dataclass(frozen=True)
class SigV2:
    """A ResponseURL signed the older way: an absolute ``Expires`` in epoch seconds, and no signing time."""

    expires_at: float

    def query(self, token: str) -> str:
        return f"AWSAccessKeyId=key{token}&Expires={int(self.expires_at)}&Signature=sig{token}"


class ResponseReceiver(FaultPlan, LoopbackService):
    scheme = "https"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._puts: list[Put] = []
        self._attempts: list[str] = []
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
        return self.url

    def stop(self) -> None:
        super().stop()
        self._dir.cleanup()

    def new_url(self, signed: SigV4 | SigV2 | None = None) -> str:
        """A fresh presigned-looking URL, as CloudFormation gives one per request.

        Unless ``signed`` says how, it carries no signing time nor expiry: the
        function then cannot tell how long CloudFormation has been waiting.
        """
        token = uuid.uuid4().hex
        query = f"X-Amz-Signature=sig{token}&X-Amz-Credential=cred{token}" if signed is None else signed.query(token)
        return f"{self.url}/cfn-response/{token}?{query}"

    def reset(self) -> None:
        with self._lock:
            self._puts.clear()
            self._attempts.clear()
        self.clear_faults()

    def puts(self, url: str | None = None) -> list[Put]:
        """Accepted PUTs, all or those to ``url``."""
        path = None if url is None else url[len(self.url) :]
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
        path = url[len(self.url) :]
        with self._lock:
            return self._attempts.count(path)

    def _take(self, path: str, body: bytes) -> int:
        """Record one PUT's attempt, then its fault if one is armed: the status to answer, or 0 to hang up."""
        with self._lock:
            self._attempts.append(path)
        fault = self.take_fault("PUT")
        if fault is not None:
            time.sleep(fault.wait)
            if fault.kind == "drop":
                return 0
            if fault.kind != "slow":
                return fault.status or 503  # a throttled PUT: S3 answers 503 SlowDown
        with self._lock:
            self._puts.append(Put(path, body, time.monotonic()))
        return 200


class _PutHandler(LoopbackHandler):
    owner: ResponseReceiver

    def do_PUT(self) -> None:
        status = self.owner._take(self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if not status:
            self.drop()
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


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
