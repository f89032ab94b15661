"""Start-on-demand for the embedded local services (Snowflake emulator, offline FMP server).

Each service runs as one detached process per data folder so that every Dagster process (steps,
sensors, daemon, webserver) talks to the same instance. A state file records pid and port; a file
lock makes concurrent starters agree on one process.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from dagster import Failure

from resources.settings import PROJECT_ROOT


def free_port() -> int:
    """A loopback port nothing listens on now (for services and tests that need their own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "server.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def ensure_service(name: str, module: str, state_dir: Path, port: int, args: list[str], timeout: float = 60.0) -> int:
    """Return the port of the running service for ``state_dir``, starting it if needed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir / "start.lock"):
        state = read_state(state_dir)
        if state and pid_alive(state["pid"]) and port_open(state["port"]):
            return state["port"]
        if port_open(port):
            # a setup problem, not a transient one: the steps' retry policy must not wait it out
            raise Failure(
                f"{name}: port {port} is taken by a process that is not this data folder's {name}; "
                f"stop it or choose another port", allow_retries=False)
        log = open(state_dir / "server.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(port), *args],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the step process that started it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {state_dir / 'server.log'}")
            if port_open(port):
                (state_dir / "server.json").write_text(json.dumps({"pid": proc.pid, "port": port}))
                return port
            time.sleep(0.1)
        proc.kill()
        raise RuntimeError(f"{name} did not start within {timeout:.0f}s; see {state_dir / 'server.log'}")


def stop_service(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the service recorded in ``state_dir``; True if one was running."""
    with _locked(state_dir / "start.lock"):
        state = read_state(state_dir)
        (state_dir / "server.json").unlink(missing_ok=True)
        if not state or not pid_alive(state["pid"]):
            return False
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(state["pid"]):
            try:
                os.waitpid(state["pid"], os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if pid_alive(state["pid"]):
            os.kill(state["pid"], signal.SIGKILL)
        return True
