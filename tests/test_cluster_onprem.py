"""`ray up cluster-onprem.yaml` for real: a cluster of two nodes brought up over SSH on this machine
(tests/onprem_lab.py: a head at 127.0.0.2 and a worker at 127.0.0.3, each its own sshd in namespaces of its
own, on a network of loopback alone), a sweep across both nodes, the worker lost mid-sweep, `ray down`.

The cluster config is cluster-onprem.yaml itself, with what must differ here: the addresses, the login, a
cluster name of its own, one CPU per node (two trials at once take one node each) and, instead of a venv
made and pip-installed on each node, this test's environment linked where the venv goes, with the synced
copy of the repository first on PYTHONPATH (as `pip install -e ~/frozen-slt` would make it). Everything else
runs as a user runs it: file_mounts over rsync, the setup checks, Ray's token authentication on every node
and the driver, the start commands (autoscaler v1 pinned), the sweep through `ray exec ... --address auto`.
"""

import getpass
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from onprem_lab import Lab, describe, missing_requirement, poll
from ray_processes import gcs_answers
from sweep_outputs import results, sweep_runs, terminated_in_ray, trials_running_on

from frozen_slt.ticket import read_ticket

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
INSTALLS = 3  # cluster-onprem.yaml's setup commands that make the venv and pip-install into it
EPOCHS = 30  # of each lost-node trial: a fraction of a second each here, so the kill lands mid-trial
pytestmark = pytest.mark.slow

LOST_NODE_SWEEP = """
name = "lost-node"
families = ["frozen"]
weight_trained_baseline = false
[experiment]
model = "conv4"
dataset = "digits"
epochs = {epochs}
batch_size = 64
lr = 0.05
[grid]
sparsity = [0.5]
freeze_ratio = [0.3, 0.6]
"""

NODES_PROBE = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.time() + float(sys.argv[2])
while True:
    alive = sorted([n["NodeManagerAddress"], n["NodeManagerHostname"]] for n in ray.nodes() if n["Alive"])
    if len(alive) >= int(sys.argv[3]) or time.time() > deadline:
        break
    time.sleep(1)
print(json.dumps(alive))
"""


def onprem_config(lab: Lab, directory: Path, name: str) -> Path:
    """cluster-onprem.yaml for the lab (see module docstring); fails if the file no longer has what is replaced."""
    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = name
    config["provider"].update(head_ip=lab.head.address, worker_ips=[lab.worker.address])
    config["auth"] = {"ssh_user": getpass.getuser(), "ssh_private_key": str(lab.key)}
    setup = config["setup_commands"]
    installs = [i for i, command in enumerate(setup) if "-m venv" in command or "pip install" in command]
    assert installs == list(range(installs[0], installs[0] + INSTALLS)), setup
    setup[installs[0]:installs[-1] + 1] = [
        f"ln -sfn {sys.prefix} ~/frozen-slt-venv",
        "grep -q PYTHONPATH ~/.bashrc || echo 'export PYTHONPATH=$HOME/frozen-slt' >> ~/.bashrc"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert sum(" ray start " in command for command in config[key]) == 1, config[key]
        config[key] = [command + " --num-cpus=1" if " ray start " in command else command for command in config[key]]
    path = directory / "cluster-onprem-lab.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def launcher_env(directory: Path) -> dict[str, str]:
    """The environment `ray up` runs in: a home of its own holding a fresh Ray token (private), no Ray settings."""
    home = directory / "launcher"
    (home / ".ray").mkdir(parents=True)
    token = home / ".ray" / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    (directory / "launcher-tmp").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    return env | {"HOME": str(home), "TMPDIR": str(directory / "launcher-tmp"), "RAY_USAGE_STATS_ENABLED": "0",
                  "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}


def tail(result: subprocess.CompletedProcess, characters: int = 4000) -> str:
    return (result.stdout + result.stderr)[-characters:]


def alive_nodes(lab: Lab, env: dict[str, str], count: int, timeout: float = 120) -> list[list[str]]:
    """The cluster's live nodes ([address, hostname]) once ``count`` are alive, or after ``timeout`` seconds."""
    probe_env = env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(Path(env["HOME"]) / ".ray" / "auth_token")}
    probe = subprocess.run([*lab.enter(), sys.executable, "-c", NODES_PROBE, f"{lab.head.address}:6379", str(timeout),
                            str(count)], env=probe_env, capture_output=True, text=True, timeout=timeout + 60)
    assert probe.returncode == 0, tail(probe)
    return json.loads(probe.stdout.strip().splitlines()[-1])


def autoscaler_log(lab: Lab, characters: int = 3000) -> str:
    """The end of the head's autoscaler output (what it ran on the workers over SSH), for failure messages."""
    path = lab.head.ray_tmp / "ray" / "session_latest" / "logs" / "monitor.out"
    return path.read_text(errors="replace")[-characters:] if path.is_file() else f"(no {path})"


def assert_loopback_only(lab: Lab) -> None:
    """The lab's network has loopback alone and no route out; sshd listens on the two node addresses."""
    assert lab.interfaces() == {"lo"} and lab.routes() == []
    listening = lab.listening()
    assert {address for address, port in listening if port == 22} == {lab.head.address, lab.worker.address}
    assert all(ipaddress.ip_address(address).is_loopback or ipaddress.ip_address(address).is_unspecified
               for address, _ in listening), listening


def check_smoke_sweep(output: str, lab: Lab, storage: Path) -> None:
    # placement: one trial on each node, said by the summary, MLflow and Ray's own results
    assert f"trials per node (where each ended): {lab.head.address} (onprem-head) 1, " \
           f"{lab.worker.address} (onprem-worker) 1" in output, output[-3000:]
    client, parent, children = sweep_runs(lab.head.home / "frozen-slt" / "mlflow.db", "digits")
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert {(c.data.tags["node_ip"], c.data.tags["hostname"]) for c in children} == {
        (lab.head.address, "onprem-head"), (lab.worker.address, "onprem-worker")}
    assert all(c.info.status == "FINISHED" for c in children)
    on_worker = [trial for trial, lines in results(storage, "digits").items() if lines[-1]["node_ip"] == lab.worker.address]
    assert len(on_worker) == 1
    # the fronts and every ticket, in the head's store and as files
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_fronts.png", "pareto_fronts.json", "pareto_front_dense.csv", "pareto_front_frozen.csv"} <= artifacts
    (tickets,) = storage.glob("digits-*.results/tickets")
    for child in children:
        trial = child.data.tags["ray_trial_id"]
        assert [a.path for a in client.list_artifacts(child.info.run_id, "ticket")] == [f"ticket/{trial}.slt"]
        assert read_ticket(tickets / f"{trial}.slt").config_hash == child.data.tags["config_hash"]


def lose_the_worker_mid_sweep(lab: Lab, run, config: Path, shared: Path) -> tuple[str, subprocess.CompletedProcess]:
    """Start the lost-node sweep through `ray exec`, SIGKILL the worker's raylet once a trial there has reported
    its second epoch (and is far from its last), and let the sweep finish; the trial that was running there, and
    the run."""
    sweep = shared / "lost-node.toml"
    sweep.write_text(LOST_NODE_SWEEP.format(epochs=EPOCHS))
    storage = shared / "ray_results"
    with open(shared / "lost-node.out", "w+") as out:
        driver = run("exec", str(config), f"cd ~/frozen-slt && python3 sweeps/pareto.py --config {sweep} --address auto "
                                          f"--storage {storage}", stdout=out)

        def running_on_worker() -> str | None:
            running = trials_running_on(lab.head.home / "frozen-slt" / "mlflow.db", lab.worker.address)
            return next((trial for trial, epoch in running.items() if 2 <= epoch <= EPOCHS - 10), None)

        trial = poll(running_on_worker, 180, 0.1)
        assert trial is not None and driver.poll() is None, "no trial trained on the worker"
        (raylet,) = [process for process in lab.worker.processes() if process.name() == "raylet"]
        raylet.kill()
        driver.wait(timeout=300)
        out.seek(0)
        return trial, subprocess.CompletedProcess(driver.args, driver.returncode, out.read(), "")


def check_lost_node_sweep(trial: str, output: str, lab: Lab, storage: Path) -> None:
    worker, retried = f"{lab.worker.address} (onprem-worker)", f"retried {trial} once from its last checkpoint, ran on "
    assert f"{retried}{worker}, " in output, output[-3000:]  # and then on a node that was up
    epochs = [line["epoch"] for line in results(storage, "lost-node")[trial]]
    assert epochs[0] == 0 and 0 not in epochs[1:] and epochs[-1] == EPOCHS, epochs  # resumed, not started over
    client, parent, children = sweep_runs(lab.head.home / "frozen-slt" / "mlflow.db", "lost-node")
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert sorted(c.data.tags["ray_trial_id"] for c in children) == sorted(terminated_in_ray(storage, "lost-node"))
    assert set(terminated_in_ray(storage, "lost-node").values()) == {"TERMINATED"}
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
        assert sorted(steps) == list(range(EPOCHS + 1)), steps  # every epoch once, the retried trial's too
    (lost,) = [c for c in children if c.data.tags["ray_trial_id"] == trial]
    assert lost.data.tags["retries"] == "1" and lost.data.tags["ran_on"].startswith(f"{worker}, ")


def assert_guarded(lab: Lab, env: dict[str, str]) -> None:
    """Nothing outside loopback is reachable, and Ray refuses a client without the cluster's token (and
    answers one with it: the probe tells them apart)."""
    assert_loopback_only(lab)
    address = f"{lab.head.address}:6379"
    assert gcs_answers(address, env | {"RAY_AUTH_MODE": "disabled"}, tuple(lab.enter())).startswith("REFUSED")
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(Path(env["HOME"]) / ".ray" / "auth_token")}
    assert gcs_answers(address, env | token, tuple(lab.enter())) == "ANSWERED"


def run_smoke_sweeps(lab: Lab, run, config: Path, storage: Path) -> None:
    """A trial bigger than any node is refused; the smoke sweep runs on both nodes; run again, it reruns nothing."""
    smoke_sweep = f"cd ~/frozen-slt && python3 sweeps/pareto.py --smoke --address auto --storage {storage}"
    # two 1-CPU nodes hold 2 CPUs, but a trial runs on one node: refused before any MLflow run is opened
    too_big = run("exec", str(config), f"{smoke_sweep} --cpus-per-trial 2")
    assert too_big.returncode != 0 and "no node of the Ray cluster has that much (the largest has 1 CPUs" in \
        too_big.stdout + too_big.stderr, tail(too_big)
    assert not (lab.head.home / "frozen-slt" / "mlflow.db").exists()
    smoke = run("exec", str(config), smoke_sweep)
    assert smoke.returncode == 0, tail(smoke)
    check_smoke_sweep(smoke.stdout, lab, storage)
    again = run("exec", str(config), smoke_sweep)  # finished: nothing runs again, nothing is recorded twice
    assert again.returncode == 0, tail(again)
    check_smoke_sweep(again.stdout, lab, storage)


def tear_down(lab: Lab, run, config: Path) -> None:
    """Stop the workers' Ray from the head, then `ray down`: no Ray process is left on either node."""
    stopped = run("exec", str(config), "python3 ~/frozen-slt/sweeps/stop_workers.py")
    assert stopped.returncode == 0 and f"{lab.worker.address}: Ray stopped" in stopped.stdout, tail(stopped)
    down = run("down", "-y", str(config))
    assert down.returncode == 0, tail(down)
    gone = poll(lambda: not lab.head.processes() + lab.worker.processes(), 60)
    assert gone, describe(lab.head.processes() + lab.worker.processes())
    assert {port for _, port in lab.listening()} == {22}  # sshd alone


def forget_ssh_connections(cluster_name: str) -> None:
    """Remove the directory of SSH control sockets Ray's launcher and autoscaler keep for the cluster in /tmp
    (``/tmp/ray_ssh_<user hash>/<cluster hash>``), and its parent if nothing else is in it."""
    control = Path("/tmp") / f"ray_ssh_{hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]}"
    shutil.rmtree(control / hashlib.sha256(cluster_name.encode()).hexdigest()[:10], ignore_errors=True)
    if control.is_dir() and not any(control.iterdir()):
        control.rmdir()


def test_ray_up_over_ssh_runs_a_sweep_on_both_nodes_survives_a_lost_node_and_comes_down(tmp_path):
    problem = missing_requirement()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    lab, name = Lab(tmp_path / "lab", uuid.uuid4().hex), f"onprem-test-{uuid.uuid4().hex[:8]}"
    env, shared = launcher_env(tmp_path), tmp_path / "shared"  # shared: one path on both nodes, as an NFS mount
    shared.mkdir()

    def run(*args, stdout=None):
        """The ray CLI in the lab's network, from the repository root (file_mounts syncs "."): a Popen when
        ``stdout`` is a file, else run to its end."""
        command = [*lab.enter(), RAY, *args]
        if stdout is not None:
            return subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=subprocess.STDOUT)
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    try:
        lab.start()
        config = onprem_config(lab, tmp_path, name)
        up = run("up", "-y", str(config))
        assert up.returncode == 0, tail(up)
        # the worker joins through the launcher: the head's autoscaler starts it over SSH
        both = [[lab.head.address, "onprem-head"], [lab.worker.address, "onprem-worker"]]
        assert alive_nodes(lab, env, 2) == both, autoscaler_log(lab)
        assert_guarded(lab, env)
        run_smoke_sweeps(lab, run, config, shared / "ray_results")
        trial, lost = lose_the_worker_mid_sweep(lab, run, config, shared)
        assert lost.returncode == 0, lost.stdout[-4000:]
        check_lost_node_sweep(trial, lost.stdout, lab, shared / "ray_results")
        # the head's autoscaler (v1) restarts Ray on the worker once it misses its heartbeats
        assert alive_nodes(lab, env, 2) == both, autoscaler_log(lab)
        tear_down(lab, run, config)
    finally:
        leftovers = lab.stop()
        forget_ssh_connections(name)
    assert leftovers == []  # nothing the test started runs on, and so nothing listens
