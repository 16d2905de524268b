"""Hostile input to `sweeps/pareto.py`, run as a user runs it (a new process): stores it cannot use, fault drills
at epochs the trials never report, grids whose frozen points would be pruned sources.

Each is refused before Ray starts or any MLflow run is opened: exit status 2, one line on stderr and no
traceback, nothing changed under the test's folder (no database, no results folder, no probe file), no
Ray session folder and no process of the sweep left; and within seconds, not after minutes of retries.
"""

import socket
import time
import uuid
from pathlib import Path

import pytest
from hostile import REPOSITORY, assert_one_line_error, listing, run_command
from ray_processes import MARK, marked_processes
from sweep_runs import grid_sweep

pytestmark = pytest.mark.slow  # each case starts a Python process (about 4 s, most of it imports)

SCRIPT = REPOSITORY / "sweeps" / "pareto.py"
GRID = grid_sweep("hostile", epochs=2, sparsity="{sparsity}", freeze="[0.3]", search="{search}",
                  tail="lock_share = {lock_share}\n[optuna]\nnum_samples = 3\n{optuna_storage}\n")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refuse(tmp_path: Path, *args: str, config: dict | None = None, text: str | None = None) -> tuple[str, float]:
    """Run the sweep with ``args`` (storage and tracking store inside tmp_path unless ``args`` override them) on the
    grid above with ``config`` filled in, or on ``text``, and check that it was refused cleanly; its error line and
    how long it took."""
    settings = {"search": "grid", "sparsity": "[0.5]", "lock_share": '"proportional"', "optuna_storage": ""} | (config or {})
    (tmp_path / "sweep.toml").write_text(text if text is not None else GRID.format(**settings))
    before = listing(tmp_path)
    mark = uuid.uuid4().hex
    env = {MARK: mark, "RAY_TMPDIR": str(tmp_path / "ray-tmp"), "TMPDIR": str(tmp_path / "tmp"),
           "RAY_AUTH_TOKEN": uuid.uuid4().hex * 2, "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.monotonic()
    result = run_command([str(SCRIPT), "--config", str(tmp_path / "sweep.toml"), "--quiet",
                          "--storage", str(tmp_path / "ray"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *args],
                         cwd=tmp_path, timeout=120, env=env)
    seconds = time.monotonic() - started
    line = assert_one_line_error(result, 2)
    assert line.startswith("sweep: error: ") and result.stdout == ""
    assert listing(tmp_path) == before  # no MLflow database (so no run), no results, no probe file, no Ray folder
    assert marked_processes(mark, (tmp_path,)) == []  # and no Ray process
    return line, seconds


@pytest.mark.parametrize("args, needle", [
    (["--tracking-uri", "sqlite:////proc/mlflow.db"], "MLflow tracking store sqlite:////proc/mlflow.db (--tracking-uri): "
     "cannot create files in /proc"),
    (["--tracking-uri", "file:///proc/mlruns"], "MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true"),
    (["--tracking-uri", "sqlite:///{tmp}"], "is a folder, not a database file"),
    (["--tracking-uri", "sqlite:///{tmp}/no/mlflow.db"], "the folder {tmp}/no does not exist"),
    (["--tracking-uri", "sqlite:///{tmp}/sweep.toml"], "{tmp}/sweep.toml is not a sqlite database"),
    (["--storage", "{tmp}/sweep.toml"], "--storage {tmp}/sweep.toml: {tmp}/sweep.toml is a file, not a folder"),
    (["--storage", "/proc/rr"], "--storage /proc/rr: cannot create files in /proc"),
    (["--storage", "s4://bucket/prefix"], "Ray cannot store results under s4://"),
    (["--inject-fault", "-1"], "--inject-fault -1 is not an epoch the trials train: use 1 to 2"),
    (["--inject-fault", "0"], "--inject-fault 0 is not an epoch the trials train: use 1 to 2"),
    (["--inject-fault", "3"], "--inject-fault 3 is not an epoch the trials train: use 1 to 2"),
    (["--smoke", "--inject-fault", "2"], "use 1 to 1 (the trials of sweep 'hostile' under --smoke train 1 epoch"),
])
def test_a_sweep_is_refused_before_ray_starts(tmp_path, args, needle):
    line, _ = refuse(tmp_path, *(arg.format(tmp=tmp_path) for arg in args))
    assert needle.format(tmp=tmp_path) in line


def test_a_tracking_server_that_is_not_there_is_refused_at_once(tmp_path):
    port = closed_port()
    line, seconds = refuse(tmp_path, "--tracking-uri", f"http://127.0.0.1:{port}/")
    assert f"no server answers at 127.0.0.1:{port} (Connection refused)" in line
    assert seconds < 20  # 4-6 s measured, the interpreter's start included (it kept retrying past 180 s before)


def test_a_tracking_server_that_never_answers_is_refused_within_seconds(tmp_path):
    with socket.socket() as silent:  # the kernel completes the connection from its backlog; nothing ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        line, seconds = refuse(tmp_path, "--tracking-uri", uri)
    assert "got no answer within 3 s" in line and "is an MLflow tracking server (mlflow server) running there?" in line
    assert seconds < 20  # 7-8 s measured: the start, then the request's 3 s timeout


@pytest.mark.parametrize("storage, needle", [
    ("sqlite:////proc/study.db", "the Optuna storage sqlite:////proc/study.db: cannot create files in /proc"),
    ("sqlite:///{tmp}", "is a folder, not a database file"),
])
def test_an_optuna_storage_it_cannot_use_is_refused(tmp_path, storage, needle):
    line, _ = refuse(tmp_path, config={"search": "optuna", "optuna_storage": f'storage = "{storage.format(tmp=tmp_path)}"'})
    assert needle.format(tmp=tmp_path) in line


def test_the_default_optuna_study_needs_a_storage_folder(tmp_path):
    line, _ = refuse(tmp_path, "--storage", "/proc/rr", config={"search": "optuna"})
    assert "--storage /proc/rr: cannot create files in /proc" in line


@pytest.mark.parametrize("config, needle", [
    ({"sparsity": "[0.5, 1.0]"}, "[grid] sparsity 1.0 leaves the frozen family nothing to lock: at k = 1 every weight is "
     "pruned, so s <= (1 - k)/f = 0 and the point is a pruned source; list sparsities below 1"),
    ({"lock_share": "0.0"}, "[grid] lock_share = 0 locks no frozen weight (r = s·f = 0), which makes every frozen point "
     "a pruned source; the frozen family needs 0 < lock_share <= 1"),
])
def test_a_grid_whose_frozen_points_are_pruned_sources_is_refused_naming_the_setting(tmp_path, config, needle):
    line, _ = refuse(tmp_path, config=config)
    assert needle in line
    assert line.count("{") == 0  # the point is not printed (once, twice or at all): the setting is named


def test_a_sweep_config_nested_deeper_than_its_format_is_refused(tmp_path):
    line, _ = refuse(tmp_path, text="name = 'deep'\nvalue = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert line == (f"sweep: error: sweep config {tmp_path / 'sweep.toml'} nests arrays or tables more than 4 deep, "
                    "deeper than its format needs (settings, [section] tables and their lists or [experiment.<section>] "
                    "tables, whose arguments may be lists)")
