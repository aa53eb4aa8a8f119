"""Worker processes as an operator runs them: started, queried, stopped or killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    """One `referral-rewards worker` process (its own process group, so a kill takes all)."""

    bootstrap: str
    app_id: str
    prefix: str
    data_dir: Path
    terms: Path
    web_port: int = field(default_factory=free_port)
    partitions: int = 8
    extra: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    commit_interval: float = 0.2
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.web_port}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "streams", "worker",
            "--bootstrap", self.bootstrap,
            "--app-id", self.app_id,
            "--topic-prefix", self.prefix,
            "--terms", str(self.terms),
            "--data-dir", str(self.data_dir),
            "--web-port", str(self.web_port),
            "--partitions", str(self.partitions),
            "--clock", "events",
            "--commit-interval", str(self.commit_interval),
            "--log-level", "info",
            *self.extra,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        return self

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        text = body.decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self.get("/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the process ended, or None if it still runs after `timeout`."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crashed host or the OOM killer would."""
        self.stop(signal.SIGKILL, timeout=10)

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
