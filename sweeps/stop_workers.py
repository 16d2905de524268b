"""Stop Ray on every worker of an on-premises cluster, from its head; run it before `ray down`:

    ray exec cluster-onprem.yaml 'python3 ~/frozen-slt/sweeps/stop_workers.py' && ray down -y cluster-onprem.yaml

`ray down` runs `ray stop` on the head alone. With Ray's `local` provider it only marks the workers
terminated in a state file: a worker's raylet runs on until it gives up on the lost head (50 s), its agents
a minute later, and Ray's log monitor there stays. This script reads the worker addresses and the SSH login that `ray up` gave
the head's autoscaler (``~/ray_bootstrap_config.yaml``, whose key is ``~/ray_bootstrap_key.pem``) and runs
`ray stop` on each worker the way the autoscaler runs its commands there: over SSH, in a login shell that
reads ``~/.bashrc`` (where cluster-onprem.yaml puts Ray on the PATH).

Exit status: 0 Ray stopped on every worker; 1 a worker could not be reached or its `ray stop` failed (the
others are still stopped); 2 this machine holds no launcher config of the `local` provider (it is not the
head of a cluster that `ray up cluster-onprem.yaml` started).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
SSH_TIMEOUT_S = 120  # `ray stop` waits for Ray's processes to end before it kills them


def workers(config_path: Path) -> tuple[list[str], dict[str, Any]]:
    """The worker addresses and the ``auth`` section of the launcher config at ``config_path``.

    Raises ValueError with one line when the file is missing, does not parse, or is not of the `local`
    provider.
    """
    if not config_path.is_file():
        raise ValueError(f"{config_path} not found: run this on the head of a cluster that `ray up` started")
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{config_path} is not YAML: {str(error).splitlines()[0]}") from None
    provider, auth = (config or {}).get("provider") or {}, (config or {}).get("auth") or {}
    if provider.get("type") != "local" or not isinstance(provider.get("worker_ips"), list) or "ssh_user" not in auth:
        raise ValueError(f"{config_path} is not a config of Ray's local provider with worker_ips and an ssh_user "
                         "(this script is for cluster-onprem.yaml; cloud providers stop their workers in `ray down`)")
    return [str(address) for address in provider["worker_ips"]], auth


def ssh_command(auth: dict[str, Any], address: str, command: str) -> list[str]:
    """``ssh`` running ``command`` on ``address`` as the autoscaler does: its key and options, a login shell."""
    key = os.path.expanduser(str(auth.get("ssh_private_key", "~/ray_bootstrap_key.pem")))
    options = ["-tt", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
               # as Ray's own SSH runner: the workers' host keys are not recorded on the head
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    remote = shlex.quote(f"source ~/.bashrc; {command}")
    return ["ssh", *options, f"{auth['ssh_user']}@{address}", f"bash --login -c -i {remote}"]


def stop_ray(auth: dict[str, Any], address: str) -> str | None:
    """Run `ray stop` on ``address``; None when it succeeded, else one line saying what failed."""
    try:
        done = subprocess.run(ssh_command(auth, address, "ray stop"), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=SSH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no answer within {SSH_TIMEOUT_S} s"
    except OSError as error:  # no ssh client on this machine
        return f"cannot run ssh: {error}"
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        return f"exit status {done.returncode}: {lines[-1] if lines else 'no output'}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sweeps/stop_workers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=BOOTSTRAP_CONFIG,
                        help="the launcher config `ray up` left on the head (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        addresses, auth = workers(Path(os.path.expanduser(args.config)))
    except ValueError as error:
        print(f"stop_workers: error: {error}", file=sys.stderr)
        return 2
    failed = 0
    for address in addresses:
        problem = stop_ray(auth, address)
        print(f"{address}: {'Ray stopped' if problem is None else 'ray stop failed: ' + problem}", flush=True)
        failed += problem is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
