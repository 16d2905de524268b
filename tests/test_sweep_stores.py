"""The stores a sweep writes are checked in seconds before Ray starts (sweeps.stores); the checks create nothing.

In-process and fast; tests/test_hostile_sweeps.py runs the same refusals through `sweeps/pareto.py`.
"""

import http.server
import socket
import sqlite3
import threading

import pytest
from hostile import listing

from frozen_slt.errors import SweepError
from sweeps.stores import (
    check_database,
    check_folder,
    check_reachable,
    check_storage,
    check_stores,
    check_tracking_uri,
)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released by the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def answering(request):
    """An HTTP server on 127.0.0.1 answering every GET with the status ``request.param``; its URI."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(request.param)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):  # keep the test's output clean
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def refused(check, *args, **kwargs) -> str:
    with pytest.raises(SweepError) as error:
        check(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_good_local_stores_pass_and_nothing_is_created(tmp_path):
    (tmp_path / "old.db").write_bytes(b"")  # sqlite treats an empty file as a new database
    before = listing(tmp_path)
    check_stores(str(tmp_path / "ray" / "deeper"), tmp_path / "ray" / "deeper", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 f"sqlite:///{tmp_path / 'ray' / 'deeper' / 'study.optuna.db'}")  # inside the state folder the sweep makes
    check_tracking_uri(f"sqlite:///{tmp_path / 'old.db'}")
    check_storage("s3://bucket/prefix")  # remote: only the scheme is checked, nothing is contacted
    assert listing(tmp_path) == before  # the write probe left nothing behind


def test_an_existing_sqlite_database_passes(tmp_path):
    sqlite3.connect(tmp_path / "real.db").execute("create table t (x)").connection.close()
    check_tracking_uri(f"sqlite:///{tmp_path / 'real.db'}")


@pytest.mark.parametrize("uri, needle", [
    ("sqlite:////proc/mlflow.db", "cannot create files in /proc"),
    ("sqlite:///{tmp}", "is a folder, not a database file; name a file in it, e.g. sqlite:///{tmp}/mlflow.db"),
    ("sqlite:///{tmp}/missing/mlflow.db", "the folder {tmp}/missing does not exist"),
    ("sqlite:///{tmp}/notes.txt", "is not a sqlite database"),
    ("sqlite:///{tmp}/notes.txt/mlflow.db", "the folder {tmp}/notes.txt is a file"),
    ("sqlite://", "an in-memory database keeps nothing"),
    ("sqlite:///:memory:", "an in-memory database keeps nothing"),
    ("file:///proc/mlruns", "MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true"),
    ("{tmp}/mlruns", "MLflow 3 refuses a file store"),
    ("nonsense", "MLflow 3 refuses a file store"),
    ("mysql+nosuchdriver://127.0.0.1/db", "not a database URL SQLAlchemy knows"),
])
def test_bad_tracking_stores_are_refused_in_one_line(tmp_path, monkeypatch, uri, needle):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "notes.txt").write_text("not a database\n")
    before = listing(tmp_path)
    message = refused(check_tracking_uri, uri.format(tmp=tmp_path))
    assert message.startswith(f"MLflow tracking store {uri.format(tmp=tmp_path)} (--tracking-uri): ")
    assert needle.format(tmp=tmp_path) in message
    assert listing(tmp_path) == before


def test_an_allowed_file_store_is_checked_as_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_tracking_uri(f"file://{tmp_path / 'mlruns'}")
    assert "cannot create files in /proc" in refused(check_tracking_uri, "file:///proc/mlruns")


@pytest.mark.parametrize("storage, needle", [
    ("{tmp}/notes.txt", "--storage {tmp}/notes.txt: {tmp}/notes.txt is a file, not a folder; give a folder"),
    ("{tmp}/notes.txt/ray", "{tmp}/notes.txt is a file, not a folder (in the way of {tmp}/notes.txt/ray)"),
    ("/proc/rr", "--storage /proc/rr: cannot create files in /proc"),
    ("file:///proc/rr", "cannot create files in /proc"),
    ("s4://bucket/prefix", "Ray cannot store results under s4://; give a folder or a URI of s3://"),
])
def test_bad_storage_is_refused_in_one_line(tmp_path, storage, needle):
    (tmp_path / "notes.txt").write_text("not a folder\n")
    assert needle.format(tmp=tmp_path) in refused(check_storage, storage.format(tmp=tmp_path))


def test_a_dangling_link_is_no_folder(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert "is a link to nothing" in refused(check_folder, tmp_path / "link" / "ray", "--storage x")


def test_an_optuna_sqlite_outside_the_state_folder_needs_an_existing_folder(tmp_path):
    message = refused(check_database, f"sqlite:///{tmp_path / 'no' / 'study.db'}", "[optuna] storage",
                      created=tmp_path / "ray")
    assert f"the folder {tmp_path / 'no'} does not exist" in message


def test_a_closed_port_is_refused_at_once():
    port = closed_port()
    assert f"no server answers at 127.0.0.1:{port} (Connection refused)" in refused(check_reachable, "127.0.0.1", port, "x")
    message = refused(check_tracking_uri, f"http://127.0.0.1:{port}/")
    assert message.startswith(f"MLflow tracking store http://127.0.0.1:{port}/ (--tracking-uri): no server answers")


@pytest.mark.parametrize("answering, needle", [
    (404, "answered 404: not a working MLflow tracking server"),
    (503, "answered 503: not a working MLflow tracking server"),
    (401, "the server refused MLflow's credentials (401)"),
], indirect=["answering"])
def test_an_http_server_that_is_no_working_mlflow_server_is_refused(answering, needle):
    assert needle in refused(check_tracking_uri, answering)


@pytest.mark.parametrize("answering", [200], indirect=True)
def test_an_http_server_answering_mlflow_s_search_passes(answering):
    check_tracking_uri(answering)
    check_tracking_uri(answering.rstrip("/"))
