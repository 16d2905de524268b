"""Finding the Ray cluster: a live one is joined, a stale record is ignored, an unreachable address refused;
trials that ask for more than the cluster has are refused before any is queued; what a killed driver's
local Ray leaves is ended by the next run, and nothing else is."""

import logging
import socket
import stat
import subprocess
import sys

import psutil
import pytest

from sweeps.cluster import (
    SweepError,
    check_resources,
    current_cluster_file,
    ensure_private_token,
    reachable,
    reap_local_ray,
    resolve_address,
)


@pytest.fixture
def ray_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "ray").mkdir()
    return tmp_path


@pytest.fixture
def listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"127.0.0.1:{server.getsockname()[1]}"


def closed_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes


def test_the_record_file_follows_ray_tmpdir(ray_tmp):
    assert current_cluster_file() == ray_tmp / "ray" / "ray_current_cluster"


def test_no_record_starts_ray_locally(ray_tmp):
    assert resolve_address(None) == "local"


def test_a_stale_record_is_ignored_not_waited_on(ray_tmp):
    current_cluster_file().write_text(closed_address())
    assert resolve_address(None) == "local"


def test_a_live_recorded_cluster_is_joined(ray_tmp, listener):
    current_cluster_file().write_text(listener)
    assert resolve_address(None) == "auto"
    assert resolve_address("auto") == "auto"


def test_ray_address_variable_is_an_explicit_address(ray_tmp, listener, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", listener)
    assert resolve_address(None) == listener
    monkeypatch.setenv("RAY_ADDRESS", closed_address())
    with pytest.raises(SweepError, match="no Ray cluster answers at 127.0.0.1:"):
        resolve_address(None)


def test_unreachable_explicit_addresses_are_refused(ray_tmp):
    address = closed_address()
    with pytest.raises(SweepError, match=f"no Ray cluster answers at {address}; start one with `ray start --head`"):
        resolve_address(address)
    with pytest.raises(SweepError, match="no Ray cluster answers on this machine"):
        resolve_address("auto")


def test_local_and_client_addresses_pass_through(ray_tmp):
    assert resolve_address("local") == "local"
    assert resolve_address("ray://head:10001") == "ray://head:10001"


def test_reachable_rejects_malformed_addresses():
    assert not reachable("no-port")
    assert not reachable("host:notaport")


def test_resources_the_cluster_lacks_are_refused():
    cpu_only = {"CPU": 2.0, "memory": 1e9}
    with pytest.raises(SweepError, match="ask for 0.5 GPU each but the Ray cluster has 0 GPUs; use --gpus-per-trial 0"):
        check_resources(1, 0.5, cpu_only)
    with pytest.raises(SweepError, match="ask for 4096 CPUs each but the Ray cluster has 2; use --cpus-per-trial 2 or less"):
        check_resources(4096, 0, cpu_only)
    with pytest.raises(SweepError, match="ask for 2 GPU each but the Ray cluster has 1 GPUs"):
        check_resources(1, 2, {"CPU": 8.0, "GPU": 1.0})
    check_resources(2, 0, cpu_only)  # exactly what the cluster has fits
    check_resources(1, 0.25, {"CPU": 8.0, "GPU": 1.0})



def test_a_trial_that_fits_the_cluster_but_no_single_node_is_refused():
    # two 2-CPU nodes hold 4 CPUs, but a 4-CPU trial runs on one node: Ray would wait for one forever
    nodes = [{"CPU": 2.0}, {"CPU": 2.0, "GPU": 1.0}]
    with pytest.raises(SweepError, match="a trial runs on one node and no node of the Ray cluster has that much "
                                         r"\(the largest has 2 CPUs and 1 GPUs\)"):
        check_resources(4, 0, {"CPU": 4.0, "GPU": 1.0}, nodes)
    with pytest.raises(SweepError, match="no node of the Ray cluster has that much"):
        check_resources(2, 0.5, {"CPU": 4.0, "GPU": 1.0}, [{"CPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}])
    check_resources(2, 1, {"CPU": 4.0, "GPU": 1.0}, nodes)  # the second node holds it


def _identity(process):
    return {"pid": process.pid, "started": psutil.Process(process.pid).create_time()}


def test_the_local_ray_of_a_killed_driver_is_reaped_and_nothing_else():
    driver = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_driver = _identity(driver)
    driver.wait()
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        host = socket.gethostname()
        reused = {**_identity(bystander), "started": _identity(bystander)["started"] - 5}  # same pid, another process
        alive_driver = {"host": host, "driver": _identity(bystander), "processes": [_identity(leftover)]}
        assert reap_local_ray(alive_driver) == [] and leftover.poll() is None  # its driver still runs
        assert reap_local_ray({"host": "elsewhere", "driver": dead_driver, "processes": [_identity(leftover)]}) == []
        assert reap_local_ray(None) == []
        record = {"host": host, "driver": dead_driver, "processes": [_identity(leftover), reused]}
        assert reap_local_ray(record) == [leftover.pid]
        assert leftover.wait(timeout=10) is not None and bystander.poll() is None
    finally:
        for process in (leftover, bystander):
            process.kill()
            process.wait()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_new_local_ray_gets_a_token_only_its_owner_can_read(home):
    path = ensure_private_token()
    assert path == home / ".ray" / "auth_token"
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0  # 256 bits in hex, like the tokens Ray generates
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_private_token() == path and path.read_text() == token  # an existing token is kept


def test_an_existing_token_that_others_can_read_is_warned_about_not_changed(home, caplog):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("a" * 64)
    (home / ".ray" / "auth_token").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="sweeps.cluster"):
        ensure_private_token()
    assert "can be read by other users" in caplog.text and "chmod 600" in caplog.text
    assert (home / ".ray" / "auth_token").read_text() == "a" * 64
    assert stat.S_IMODE((home / ".ray" / "auth_token").stat().st_mode) == 0o644


@pytest.mark.parametrize("variable, value", [("RAY_AUTH_MODE", "disabled"), ("RAY_AUTH_TOKEN", "b" * 64),
                                             ("RAY_AUTH_TOKEN_PATH", "/elsewhere/token")])
def test_no_token_file_is_made_when_the_token_comes_from_elsewhere_or_auth_is_off(home, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert ensure_private_token() is None and not (home / ".ray").exists()


def test_ray_s_invitation_to_switch_token_authentication_off_is_dropped_and_its_other_warnings_stay():
    from ray._private.authentication import authentication_token_setup as ray_auth

    from sweeps.cluster import AUTH_LOGGER, drop_opt_out_hint

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(AUTH_LOGGER)
    logger.addHandler(handler)
    try:
        drop_opt_out_hint()
        drop_opt_out_hint()  # once is enough: a second call adds no second filter
        ray_auth._warn_token_auth_enabled()  # what ray.init logs on every sweep that starts or joins a Ray with a token
        ray_auth._warn_token_auth_disabled()  # a warning that must stay visible
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert len(messages) == 1 and messages[0].startswith("Token authentication is disabled for this Ray cluster")
    assert sum(type(f).__name__ == "_DropOptOutHint" for f in logger.filters) == 1
