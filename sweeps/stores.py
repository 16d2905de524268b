"""Checking a sweep's stores before Ray starts: MLflow's tracking store, Ray's results storage, the sweep's
own state folder and the Optuna study's storage.

Left to themselves, these stores fail late and loudly: MLflow retries an unreachable server for minutes
and a sqlite path it cannot write for about a minute, then both end in a long traceback, as do Ray and
the sweep's own folder on a path that is a file or on a read-only filesystem, all after Ray started. So
each is checked here, within seconds, and a store that cannot work is refused with one line naming it,
the problem and what is allowed (:class:`SweepError`). What is checked, and what is not:

- A sqlite database (``sqlite:///path``: the default tracking store and the default Optuna study): it
  must not be a folder, its folder must exist (or be one the sweep creates) and take new files (sqlite
  writes its journal there), and an existing file must be a sqlite database the sweep can open for
  writing. An in-memory database is refused: the records would be lost and could not be resumed.
- A folder (a local ``--storage``, also ``file://``; the sweep's state folder): an existing folder, or a
  path that can be created under its nearest existing ancestor, which must be a folder; either must take
  new files. A file in the way is refused.
- "Takes new files" is probed by creating and removing an empty temporary file, because ``os.access``
  answers yes to root on read-only trees such as /proc. Nothing else is created: the databases and the
  folders themselves are made by the sweep once everything is checked.
- A server (an MLflow tracking server over http or https, a database server such as PostgreSQL or
  MySQL): its host must accept a TCP connection within ``TIMEOUT_S`` (a name lookup that hangs is the
  system resolver's, not bounded by it). An http(s) server must also answer a read-only search for one
  experiment within ``TIMEOUT_S`` with 200, asked through MLflow's own client code so that its TLS
  settings and credentials (MLFLOW_TRACKING_*) apply, but without its retries (which last minutes).
  Whether the user may also write there is not checked. A database server's driver must be importable;
  whether the database exists and takes the user's credentials is not checked (the password may live in
  files the driver reads).
- Remote ``--storage`` (s3://, gs://, hdfs://, abfs://, ...): only the scheme is checked, against the
  filesystems pyarrow (which Ray uses) opens. The bucket, the credentials and the network are not:
  reaching them needs the cloud's SDK, can take long and may cost money; Ray reports them on first use.
- MLflow's file store (``file://`` or a plain path as tracking URI) is refused, as MLflow 3 does, unless
  MLFLOW_ALLOW_FILE_STORE is set; then it is checked as a folder. A ``databricks`` URI is not checked.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from frozen_slt.errors import SweepError

#: Seconds a server has to accept a connection, and then to answer the health request.
TIMEOUT_S = 3.0
SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
#: Remote filesystems pyarrow.fs.FileSystem.from_uri opens (Ray's storage goes through it).
REMOTE_STORAGE = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def check_stores(storage: str, local_dir: Path, tracking_uri: str, optuna_storage: str | None) -> None:
    """Refuse (SweepError) any store the sweep could not use; see module docstring. ``optuna_storage`` is
    the study's SQLAlchemy URL (None: no Optuna search); a sqlite study inside ``local_dir`` may have a
    folder that does not exist yet, since the sweep creates ``local_dir``."""
    check_storage(storage)
    check_folder(local_dir, "the sweep's state folder (--storage, or ./sweep_state for remote storage)")
    check_tracking_uri(tracking_uri)
    if optuna_storage is not None:
        check_database(optuna_storage, f"the Optuna storage {optuna_storage}", created=local_dir)


def check_storage(storage: str) -> None:
    """``--storage``: a local folder (path or file://), or a URI of a remote filesystem Ray can use."""
    scheme = urlsplit(storage).scheme if "://" in storage else ""
    if scheme in ("", "file"):
        path = Path(unquote(urlsplit(storage).path)) if scheme else Path(storage)
        check_folder(path, f"--storage {storage}")
    elif scheme not in REMOTE_STORAGE:
        raise SweepError(f"--storage {storage}: Ray cannot store results under {scheme}://; give a folder or a URI "
                         f"of {', '.join(f'{name}://' for name in REMOTE_STORAGE)}")


def check_tracking_uri(uri: str) -> None:
    """``--tracking-uri``: a sqlite file, a database server, an MLflow server, or (if allowed) a file store."""
    label = f"MLflow tracking store {uri} (--tracking-uri)"
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        check_mlflow_server(uri, label)
    elif scheme == "databricks":
        return  # Databricks: its own credentials and hosts, not checked here
    elif scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise SweepError(f"{label}: MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true; "
                             "use sqlite:///path/mlflow.db (the default is ./mlflow.db) or an http(s):// tracking server")
        check_folder(Path(unquote(urlsplit(uri).path)) if scheme else Path(uri), label)
    elif "://" in uri:
        check_database(uri, label)
    else:
        raise SweepError(f"{label}: not a URI MLflow can track into; use sqlite:///path/mlflow.db, "
                         "an http(s):// tracking server or a database URL such as postgresql://host/db")


def check_database(url: str, label: str, created: Path | None = None) -> None:
    """A SQLAlchemy URL: a sqlite file (its folder may be ``created`` by the sweep) or a reachable server."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise SweepError(f"{label}: not a database URL SQLAlchemy knows ({error}); "
                         "use sqlite:///path/name.db or a server URL such as postgresql://host/db") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        check_sqlite(parsed.database, label, created)
        return
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise SweepError(f"{label}: the {backend} driver is not installed ({error}); install it, "
                         "or use sqlite:///path/name.db") from None
    port = parsed.port or DEFAULT_PORTS.get(backend)
    if parsed.host and port:  # no host: a local Unix socket; no port: a dialect unknown here; both left to the driver
        check_reachable(parsed.host, port, label)


def check_sqlite(database: str | None, label: str, created: Path | None = None) -> None:
    """A sqlite database file; see module docstring. Relative paths are relative to the working directory."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise SweepError(f"{label}: an in-memory database keeps nothing once the sweep ends and cannot be resumed; "
                         "give a file, e.g. sqlite:///mlflow.db")
    path = Path(database).absolute()
    if path.is_dir():
        raise SweepError(f"{label}: {path} is a folder, not a database file; name a file in it, "
                         f"e.g. sqlite:///{path / 'mlflow.db'}")
    folder = path.parent
    if created is not None and folder.absolute().is_relative_to(created.absolute()) and not folder.exists():
        return  # inside the sweep's state folder, which was checked and is created before the database
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise SweepError(f"{label}: the folder {folder} {what}; give a database path in an existing folder")
    probe_writable(folder, label, "give a database path in a folder you can write to")
    if path.exists():
        _check_sqlite_file(path, label)


def _check_sqlite_file(path: Path, label: str) -> None:
    try:
        with open(path, "r+b") as handle:  # opened for writing, as sqlite will, but nothing is written
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise SweepError(f"{label}: cannot open {path} for writing ({error.strerror}); "
                         "give a database you can write, or a new file name") from None
    if header and header != SQLITE_HEADER:
        raise SweepError(f"{label}: {path} is not a sqlite database (it does not start with 'SQLite format 3'); "
                         "give a new file name or an existing sqlite database")


def check_folder(path: Path, label: str) -> None:
    """An existing folder that takes new files, or a path creatable under its nearest existing ancestor."""
    path = path.absolute()
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise SweepError(f"{label}: {existing} is a link to nothing; give a folder")
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" (in the way of {path})"
        raise SweepError(f"{label}: {existing} is a file, not a folder{where}; give a folder (it is created when missing)")
    probe_writable(existing, label, "give a folder you can write to")


def probe_writable(folder: Path, label: str, remedy: str) -> None:
    """Create and remove an empty file in ``folder``; refuse with ``remedy`` when that fails."""
    try:
        descriptor, name = tempfile.mkstemp(prefix=".frozen-slt-probe-", dir=folder)
    except OSError as error:
        raise SweepError(f"{label}: cannot create files in {folder} ({error.strerror}); {remedy}") from None
    os.close(descriptor)
    os.unlink(name)


def check_reachable(host: str, port: int, label: str) -> None:
    """Something at ``host:port`` accepts a TCP connection within TIMEOUT_S."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return
    except socket.timeout:
        reason = f"no answer within {TIMEOUT_S:g} s"
    except OSError as error:
        reason = error.strerror or str(error)
    raise SweepError(f"{label}: no server answers at {host}:{port} ({reason}); start it, or use a sqlite:/// file")


def check_mlflow_server(uri: str, label: str) -> None:
    """An MLflow tracking server that answers ``GET <uri>/health`` within TIMEOUT_S (see module docstring)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    parts = urlsplit(uri)
    if not parts.hostname:
        raise SweepError(f"{label}: names no host; use http://host:port")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SweepError(f"{label}: its port is not a number from 0 to 65535; use http://host:port") from None
    check_reachable(parts.hostname, port, label)
    base, endpoint = uri.rstrip("/"), "/api/2.0/mlflow/experiments/search?max_results=1"
    try:  # MLflow's own request: its TLS settings and credentials (MLFLOW_TRACKING_*), without its retries
        response = http_request(get_default_host_creds(base), endpoint, "GET", max_retries=0, timeout=TIMEOUT_S,
                                raise_on_status=False)
    except MlflowException as error:
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else "no answer"
        raise SweepError(f"{label}: GET {base}{endpoint} got no answer within {TIMEOUT_S:g} s ({cause}); "
                         "is an MLflow tracking server (mlflow server) running there?") from None
    if response.status_code in (401, 403):
        raise SweepError(f"{label}: the server refused MLflow's credentials ({response.status_code}); set "
                         "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")
    if response.status_code != 200:
        raise SweepError(f"{label}: GET {base}{endpoint} answered {response.status_code}: not a working MLflow "
                         "tracking server; give the URI `mlflow server` serves, or a sqlite:/// file")
