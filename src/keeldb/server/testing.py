"""Run a real ``keeldb serve`` process, for tests and benchmarks.

::

    with ServerProcess(tmp_path / "db", args=["--api-key", KEY]) as server:
        client = keeldb.Client(server.url, api_key=KEY)

The process is the console command itself (``python -m keeldb.cli serve``) on 127.0.0.1
and a free port, so what is tested is what users run. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A ``keeldb serve PATH`` child process on 127.0.0.1.

    :meth:`start` returns once ``/healthz`` answers (or raises ``RuntimeError`` with the
    server's log if it exits or does not come up within ``startup_timeout_s``).
    :meth:`stop` sends SIGTERM and waits for the graceful shutdown (SIGKILL after
    ``stop_timeout_s``); it returns the exit status. ``log`` holds the server's output.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        args: Sequence[str] = (),
        port: int | None = None,
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 30.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file = tempfile.TemporaryFile()
        self._final_log: str | None = None

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout/stderr so far (kept after it exits)."""
        if self._final_log is not None:
            return self._final_log
        self._log_file.seek(0)
        return self._log_file.read().decode("utf-8", "replace")

    def _finish(self) -> None:
        """Reap the process and keep its log in memory (closes the temporary file)."""
        if self._final_log is None:
            self._final_log = self.log
            self._log_file.close()

    def start(self) -> ServerProcess:
        """Start the process and wait until it serves."""
        cmd = [
            sys.executable,
            "-m",
            "keeldb.cli",
            "serve",
            str(self.path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._finish()
                raise RuntimeError(
                    f"keeldb serve exited with {self.process.returncode}:\n{self.log}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"keeldb serve did not come up in {self.startup_timeout_s}s:\n{self.log}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit status (None if it was never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._finish()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the process (a crash, for tests) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._finish()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
