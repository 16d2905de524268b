"""optuna-dashboard served for a test: started on 127.0.0.1 at a free port against a study storage, read
through its JSON API, and stopped by its process id."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

#: The command the sweep prints, from the environment running the tests.
COMMAND = Path(sys.executable).with_name("optuna-dashboard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def optuna_dashboard(storage_url: str, timeout: float = 60.0) -> Iterator[Callable[[str], Any]]:
    """Serve ``storage_url``; yields ``get(path)``, the JSON a GET of ``path`` (``/api/studies``) answers."""
    port = free_port()
    process = subprocess.Popen([str(COMMAND), storage_url, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    try:
        deadline = time.time() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"optuna-dashboard ended with status {process.returncode}: {process.stderr.read()[-2000:]}")
            try:
                get("/api/studies")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield get
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def studies(get: Callable[[str], Any]) -> dict[str, dict[str, Any]]:
    """``{study name: its detail}`` (directions, objective_names, trials with their state and values)."""
    return {summary["study_name"]: get(f"/api/studies/{summary['study_id']}") for summary in get("/api/studies")["study_summaries"]}


def studies_once(get: Callable[[str], Any], ready: Callable[[dict[str, dict[str, Any]]], bool],
                 timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """:func:`studies` once ``ready`` holds for them, or as they are at ``timeout``: optuna-dashboard answers
    from a cache of each study's trials that it refreshes after 2 s (100 trials or more: 5 s or 10 s)."""
    deadline = time.time() + timeout
    while not ready(shown := studies(get)) and time.time() < deadline:
        time.sleep(0.5)
    return shown
