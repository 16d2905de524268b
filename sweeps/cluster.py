"""Connecting to Ray and checking, before any trial is queued, that the cluster can run the trials.

Ray waits forever for resources that do not exist and retries an unreachable head for minutes, so both
are checked here and refused with a clear message instead. A local Ray whose driver was killed is
reaped by the next run of the same sweep: its GCS, raylet and workers die with the driver, but its
dashboard and runtime-env agents keep trying to reach the dead GCS for about a minute.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import psutil

from frozen_slt.errors import SweepError

log = logging.getLogger(__name__)


def current_cluster_file() -> Path:
    """Where `ray start` records the address of the cluster on this machine (Ray's own lookup order)."""
    if "RAY_TMPDIR" in os.environ:
        root = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        root = os.environ["TMPDIR"]
    else:
        root = "/tmp"
    return Path(root) / "ray" / "ray_current_cluster"


def reachable(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_address(address: str | None) -> str:
    """The address to hand to ``ray.init``.

    None (the default): the live cluster recorded on this machine (e.g. the head node of `ray up`), else
    a new local Ray instance; a record left by a cluster that no longer runs is ignored, not waited on.
    ``auto`` or ``host:port``: that cluster, which must be reachable. ``local`` and ``ray://`` client
    addresses are passed through.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address == "local" or (address or "").startswith("ray://"):
        return address
    record = current_cluster_file()
    recorded = record.read_text().strip() if record.is_file() else ""
    if address is None:
        if recorded and reachable(recorded):
            return "auto"
        if recorded:
            log.info("ignoring %s: no Ray cluster answers at %s any more; starting Ray locally", record, recorded)
        return "local"
    target = recorded if address == "auto" else address
    if not target or not reachable(target):
        where = f"at {target}" if target else f"on this machine (no {record})"
        raise SweepError(f"no Ray cluster answers {where}; start one with `ray start --head`, "
                         "or leave out --address to run Ray locally")
    return address


#: Ray's logger of token authentication, and the hint of it that invites users to switch it off.
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
OPT_OUT_HINT = "RAY_AUTH_MODE=disabled to opt out"


class _DropOptOutHint(logging.Filter):
    """Drops Ray's "Token authentication is enabled ... Set RAY_AUTH_MODE=disabled to opt out" and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return OPT_OUT_HINT not in record.getMessage()


def drop_opt_out_hint() -> None:
    """Keep Ray's invitation to switch token authentication off out of the sweep's output (see start_ray)."""
    logger = logging.getLogger(AUTH_LOGGER)
    if not any(isinstance(existing, _DropOptOutHint) for existing in logger.filters):
        logger.addFilter(_DropOptOutHint())


def start_ray(address: str | None, trainables: Path, log_to_driver: bool) -> bool:
    """Join the cluster :func:`resolve_address` names, or start a local Ray, shipping ``trainables`` to the workers.

    Ray 2.60 binds its gRPC servers (GCS, raylet, workers) to every interface whatever node address it
    is given, so a local Ray is protected by Ray's token authentication, which ``ray.init`` turns on for a
    new local cluster unless ``RAY_AUTH_MODE=disabled`` says otherwise: that is warned about, not hidden.
    When it turns it on (also when it joins the recorded cluster with a token at hand), ``ray.init`` logs
    a warning that ends "Set RAY_AUTH_MODE=disabled to opt out", on every sweep; that one line is dropped
    (README: Security says why the token matters), every other line of Ray's stays.
    """
    import ray

    if ray.is_initialized():
        return False
    drop_opt_out_hint()
    resolved = resolve_address(address)
    if resolved == "local":
        if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
            log.warning("RAY_AUTH_MODE=disabled: the local Ray listens on every network interface and will accept work "
                        "from anyone who can reach this machine; unset RAY_AUTH_MODE to keep Ray's token authentication on")
        ensure_private_token()
    # trainables/ is not installed into site-packages: Ray ships it to every worker, on any node
    ray.init(address=resolved, include_dashboard=False, log_to_driver=log_to_driver,
             logging_level=logging.INFO if log_to_driver else logging.WARNING,
             runtime_env={"py_modules": [str(trainables)]})
    return resolved == "local"


def ensure_private_token() -> Path | None:
    """Before a new local Ray starts with token authentication: make sure the token it reads is the user's alone.

    Ray 2.60 generates a missing ``~/.ray/auth_token`` with the process's umask (usually readable by every
    local user, any of whom could then run code through the sweep's Ray), so the token is generated here
    first, as 64 hex digits like Ray's own, in a file only its owner can read. An existing token file is
    never changed; one that others can read is warned about. Nothing is done when the token comes from
    ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``, or authentication is disabled. Returns the file Ray reads.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled" or {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        return None
    path = Path.home() / ".ray" / "auth_token"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s (Ray's token) can be read by other users of this machine, who could then run code through "
                        "the sweep's Ray: chmod 600 %s", path, path)
        return path
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32))
    log.info("generated Ray's token in %s (readable by you alone)", path)
    return path


def _identity(process: psutil.Process) -> dict[str, Any]:
    return {"pid": process.pid, "started": process.create_time()}


def local_ray_record() -> dict[str, Any]:
    """This driver and the processes of the local Ray it started, as the sweep's state file keeps them."""
    me = psutil.Process()
    return {"host": socket.gethostname(), "driver": _identity(me),
            "processes": [_identity(child) for child in me.children(recursive=True)]}


def _alive(identity: dict[str, Any]) -> psutil.Process | None:
    """The process ``identity`` names if it still runs (same pid and start time: not a reused pid)."""
    try:
        process = psutil.Process(identity["pid"])
        return process if process.create_time() == identity["started"] and process.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def reap_local_ray(record: dict[str, Any] | None) -> list[int]:
    """End what is left of the local Ray of an earlier driver of this sweep that was killed; the pids ended.

    Only processes that driver recorded, on this machine, while it no longer runs.
    """
    if not record or record.get("host") != socket.gethostname() or _alive(record["driver"]) is not None:
        return []
    leftovers = [process for process in map(_alive, record.get("processes", [])) if process is not None]
    for process in leftovers:
        process.terminate()
    _, still_alive = psutil.wait_procs(leftovers, timeout=5)
    for process in still_alive:
        process.kill()
    psutil.wait_procs(still_alive, timeout=5)
    if leftovers:
        log.warning("ended %d processes left by the killed driver of this sweep (pids %s)",
                    len(leftovers), ", ".join(str(process.pid) for process in leftovers))
    return [process.pid for process in leftovers]


def check_resources(cpus_per_trial: float, gpus_per_trial: float, resources: dict[str, float],
                    nodes: list[dict[str, float]] | None = None) -> None:
    """Fail at once when one trial asks for more than the whole cluster has, or than any one of its nodes has
    (a trial runs on one node; Ray would wait forever).

    ``resources`` is the cluster's total, as ``ray.cluster_resources()`` gives it; ``nodes`` each live node's
    resources (``ray.nodes()``), when known.
    """
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    if gpus_per_trial > 0 and gpus < gpus_per_trial:
        raise SweepError(
            f"trials ask for {gpus_per_trial:g} GPU each but the Ray cluster has {gpus:g} GPUs; "
            "use --gpus-per-trial 0, or start GPU workers (cluster.yaml keeps at least one GPU worker up)"
        )
    if cpus < cpus_per_trial:
        raise SweepError(f"trials ask for {cpus_per_trial:g} CPUs each but the Ray cluster has {cpus:g}; "
                         f"use --cpus-per-trial {max(cpus, 1):g} or less")
    fits = [node for node in nodes or [] if node.get("CPU", 0.0) >= cpus_per_trial and node.get("GPU", 0.0) >= gpus_per_trial]
    if nodes and not fits:
        largest = ", ".join(f"{node.get('CPU', 0.0):g} CPUs and {node.get('GPU', 0.0):g} GPUs" for node in
                            sorted(nodes, key=lambda node: (node.get("GPU", 0.0), node.get("CPU", 0.0)))[-1:])
        raise SweepError(f"trials ask for {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs each, but a trial runs on one "
                         f"node and no node of the Ray cluster has that much (the largest has {largest}); ask for less "
                         "with --cpus-per-trial / --gpus-per-trial")


def warn_if_storage_is_not_shared(storage: str) -> None:
    """Trials on other machines cannot checkpoint into a directory on this one (unless it is NFS)."""
    import ray

    if "://" in storage:
        return
    hosts = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    if len(hosts) > 1:
        log.warning("the Ray cluster spans %d machines but --storage %s is a local path: unless it is a shared "
                    "(NFS) mount on every node, trials on other machines fail when they checkpoint; "
                    "use --storage s3://bucket/prefix", len(hosts), storage)
