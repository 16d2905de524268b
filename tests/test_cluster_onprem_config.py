"""cluster-onprem.yaml without a cluster: Ray's own validation, what it must pin (token authentication,
autoscaler v1, the node addresses), the setup checks that stop `ray up` with one line, and
sweeps/stop_workers.py's refusals and failures. tests/test_cluster_onprem.py runs it for real."""

import copy
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
CHECKS = 4  # the setup commands before the venv is made: checkout, token, its mode, Python


def test_cluster_onprem_yaml_passes_rays_own_validation_and_pins_what_it_must():
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(CONFIG))
    validate_config(prepared)
    (node_type,) = prepared["available_node_types"].values()
    workers = len(CONFIG["provider"]["worker_ips"])
    assert prepared["provider"]["type"] == "local" and node_type["min_workers"] == node_type["max_workers"] == workers
    head, worker = prepared["head_start_ray_commands"][-1], prepared["worker_start_ray_commands"][-1]
    # autoscaler v2, ray up's default, never starts this provider's workers
    assert "RAY_AUTH_MODE=token RAY_enable_autoscaler_v2=0 ray start --head" in head
    assert "RAY_AUTH_MODE=token ray start --address=$RAY_HEAD_IP:6379" in worker
    assert all("--node-ip-address=$(echo $SSH_CONNECTION | cut -d' ' -f3)" in command for command in (head, worker))
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in yaml.safe_dump(CONFIG)
    assert "~/.ray/auth_token" in CONFIG["file_mounts"] and CONFIG["file_mounts"]["~/frozen-slt"] == "."
    assert any('pip install -e "$HOME/frozen-slt[sweep]"' in command for command in prepared["setup_commands"])


def run_checks(home: Path, path: str) -> subprocess.CompletedProcess:
    """The setup commands up to the venv, as the launcher runs them one after another, in ``home``."""
    script = " && ".join(f"({command})" for command in CONFIG["setup_commands"][:CHECKS])
    return subprocess.run(["bash", "-c", script], env={"HOME": str(home), "PATH": path}, capture_output=True,
                          text=True, timeout=30)


def test_setup_stops_with_one_line_on_a_node_that_lacks_what_ray_up_needs(tmp_path):
    assert "-m venv" in CONFIG["setup_commands"][CHECKS]
    system = "/usr/local/bin:/usr/bin:/bin"
    no_checkout = run_checks(tmp_path, system)
    assert no_checkout.returncode == 1 and no_checkout.stdout.count("\n") == 1
    assert "holds no frozen-slt checkout; run ray up from the repository root" in no_checkout.stdout
    (tmp_path / "frozen-slt" / "sweeps").mkdir(parents=True)
    (tmp_path / "frozen-slt" / "sweeps" / "pareto.py").touch()
    no_token = run_checks(tmp_path, system)
    assert no_token.returncode == 1 and "no Ray token in ~/.ray/auth_token" in no_token.stdout
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    (tmp_path / ".ray" / "auth_token").chmod(0o644)
    old = tmp_path / "old-python"
    old.mkdir()
    (old / "python3").write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.8.10"; else exit 1; fi\n')
    (old / "python3").chmod(0o755)
    too_old = run_checks(tmp_path, f"{old}:{system}")
    assert too_old.returncode == 1 and too_old.stdout.count("\n") == 1
    assert "frozen-slt needs python3 >= 3.10 on every node;" in too_old.stdout and "has Python 3.8.10" in too_old.stdout
    good = tmp_path / "good-python"
    good.mkdir()
    (good / "python3").symlink_to(sys.executable)
    ready = run_checks(tmp_path, f"{good}:{system}")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert stat.S_IMODE((tmp_path / ".ray" / "auth_token").stat().st_mode) == 0o600  # made private


def stop_workers(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "sweeps" / "stop_workers.py"), *args], capture_output=True,
                          text=True, timeout=120)


def test_stop_workers_refuses_a_machine_that_is_not_an_onprem_head(tmp_path):
    missing = stop_workers("--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "none.yaml not found: run this on the head of a cluster that `ray up` started" in missing.stderr
    aws = tmp_path / "aws.yaml"
    aws.write_text(yaml.safe_dump({"provider": {"type": "aws"}, "auth": {"ssh_user": "ubuntu"}}))
    cloud = stop_workers("--config", str(aws))
    assert cloud.returncode == 2 and "is not a config of Ray's local provider with worker_ips" in cloud.stderr


def test_stop_workers_reports_a_worker_it_cannot_reach(tmp_path):
    # nothing the test starts listens at 127.0.0.9 (a system sshd on every interface would refuse the key)
    config = tmp_path / "ray_bootstrap_config.yaml"
    config.write_text(yaml.safe_dump({"provider": {"type": "local", "head_ip": "127.0.0.8", "worker_ips": ["127.0.0.9"]},
                                      "auth": {"ssh_user": "nobody", "ssh_private_key": str(tmp_path / "no-key")}}))
    result = stop_workers("--config", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith("127.0.0.9: ray stop failed: exit status 255: ") and result.stdout.count("\n") == 1
