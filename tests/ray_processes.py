"""Helpers for the sweep end-to-end tests: the Ray processes a sweep starts, what they listen on, and
whether they let in a client without the cluster's token.

A test marks the sweep's environment with MARK=<unique value>; every process Ray starts for it inherits
the variable, also one that outlives its parent. Ray's agents rename themselves with setproctitle, which
hides their environment, so a process whose working directory lies in one of the test's directories
counts as the sweep's too.
"""

import ipaddress
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

MARK = "FROZEN_SLT_TEST_MARK"
GCS_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_keys(b"", namespace=None, timeout=10)
    print("ANSWERED")
except Exception as error:
    print("REFUSED", type(error).__name__, error)
"""


def marked_processes(mark: str, directories: tuple[Path, ...] = ()) -> list[psutil.Process]:
    """Processes whose environment carries ``mark`` or whose working directory lies in ``directories``."""
    found = []
    for process in psutil.process_iter():
        try:
            cwd = Path(process.cwd())
            if process.environ().get(MARK) == mark or any(cwd.is_relative_to(d) for d in directories):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        except psutil.Error:  # gone meanwhile, or not ours to look at
            continue
    return found


def wait_for(condition, timeout: float = 60.0, interval: float = 0.2):
    """Poll ``condition()`` until it returns something true (returned) or ``timeout`` seconds pass (its last
    value is returned): for tests that wait on another process, instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until_gone(mark: str, directories: tuple[Path, ...] = (), timeout: float = 60.0) -> list[str]:
    """Wait for the marked processes to end; the ones still alive after ``timeout`` seconds, described."""
    deadline = time.monotonic() + timeout
    own = psutil.Process().pid
    while True:
        alive = [p for p in marked_processes(mark, directories) if p.pid != own]
        if not alive or time.monotonic() > deadline:
            return [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in alive]
        time.sleep(0.5)


def listening_sockets(root: int) -> dict[tuple[int, int], tuple[str, str, str | None]]:
    """``{(pid, port): (command, address, RAY_AUTH_MODE)}`` of every TCP socket ``root`` or a descendant listens on."""
    out = {}
    try:
        processes = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return out
    for process in processes:
        try:
            sockets = [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            # the whole command line: a checkout's path can be long, and the program's name comes after it
            command, mode = " ".join(process.cmdline()), process.environ().get("RAY_AUTH_MODE")
        except psutil.Error:
            continue
        out.update({(process.pid, s.laddr.port): (command, s.laddr.ip, mode) for s in sockets})
    return out


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def gcs_answers(address: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> str:
    """What Ray's own GCS client gets from ``address`` with the token (or none) that ``env`` holds; ``prefix``
    runs the probe inside another command (``nsenter --net=...``: from another network namespace)."""
    out = subprocess.run([*prefix, sys.executable, "-c", GCS_PROBE, address], env=env, capture_output=True, text=True,
                         timeout=120)
    return (out.stdout.strip().splitlines() or [out.stderr.strip()[-300:]])[-1]


def http_status_without_token(address: str, port: int) -> int:
    """The status an HTTP request without a token gets (the runtime-env agent speaks HTTP)."""
    url = f"http://{address}:{port}/get_or_create_runtime_env"
    try:
        with urllib.request.urlopen(url, data=b"", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
