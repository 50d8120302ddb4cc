"""Fixtures: one real `tenantry serve` per test session, on free ports with a new data
directory, and signed-up users.

TENANTRY_BIN names the server binary (default: the repository's target/debug/tenantry,
built with `cargo build -p tenantry`). The server uses embedded storage and the in-process
bus whatever the environment says (no TENANTRY_* variable reaches it), and is stopped at
the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

import tenantry

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "client tests " + uuid.uuid4().hex[:12]


@dataclass
class Server:
    grpc: str
    http: str
    data_dir: Path
    binary: Path
    env: Dict[str, str]

    def mail_token(self, to: str, kind: str) -> Optional[str]:
        """The token of the newest `kind` mail (`verify_email`, `invitation`, …) to `to`: the
        default mailer writes each mail as a file in <data_dir>/mail/."""
        files = sorted(p for p in (self.data_dir / "mail").glob("*") if kind in p.name)
        for path in reversed(files):
            lines = path.read_text().splitlines()
            if f"To: {to}" in lines:
                for line in lines:
                    if line.startswith("token: "):
                        return line[len("token: ") :]
        return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_ready(process: subprocess.Popen[bytes], http: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during start-up:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://{http}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # readiness polling only; tests never sleep
    raise RuntimeError("the server was not ready within 120 s")


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = Path(os.environ.get("TENANTRY_BIN", REPO / "target" / "debug" / "tenantry"))
    if not binary.exists():
        pytest.fail(f"no server binary at {binary}: cargo build -p tenantry, or set TENANTRY_BIN")
    with tempfile.TemporaryDirectory(prefix="tenantry-python-") as work:
        grpc_port, http_port = _free_ports(2)
        data = Path(work) / "data"
        log = Path(work) / "server.log"
        # Defaults and flags only: TENANTRY_* variables are the server's configuration.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TENANTRY_") and k not in ("DATABASE_URL", "NATS_URL")
        }
        grpc_addr, http_addr = f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}"
        command = [str(binary), "serve", "--grpc-addr", grpc_addr, "--http-addr", http_addr, "--data-dir", str(data)]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
        try:
            _wait_ready(process, http_addr, log)
            yield Server(grpc_addr, http_addr, data, binary, env)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def new_email(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:10]}@example.com"


def sign_up(client: tenantry.Client, server: Server, name: str) -> str:
    """Signs a new user up through the mailed link; the client then holds their session.
    Returns the email address."""
    email = new_email(name)
    answer = client.sign_up(email, PASSWORD, name.title())
    assert answer.verification_required and not answer.HasField("tokens")
    token = server.mail_token(email, "verify_email")  # written before SignUp answers
    assert token, f"no verification mail to {email}"
    verified = client.verify_email(token)
    assert verified.user.email_verified
    return email


@pytest.fixture
def client(server: Server) -> Iterator[tenantry.Client]:
    """A client of the gRPC port, signed in as a new user."""
    with tenantry.Client(server.grpc) as c:
        sign_up(c, server, "ada")
        yield c
