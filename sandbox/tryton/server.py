"""A local Tryton on the machine's PostgreSQL: its own virtual environment, database and server.

The first build installs trytond in ``var/tryton/venv``, initialises a database with the modules
the hub needs and the demo's master data (``master_data.py``), and keeps it as a PostgreSQL
template named by a hash of everything that went into it. Every later database is a copy of that
template (``CREATE DATABASE ... TEMPLATE ...``): seconds instead of a minute and a half.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]
import requests
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
MODULE_SOURCES = HERE / "modules"
# The Tryton series the adapter was written against; the template's hash includes it.
REQUIREMENTS = (
    "trytond[PostgreSQL]>=8.2,<8.3",
    "trytond-sale>=8.2,<8.3",
    "trytond-stock>=8.2,<8.3",
    "trytond-account-invoice>=8.2,<8.3",
    "trytond-account-invoice-stock>=8.2,<8.3",
    "proteus>=8.2,<8.3",
)
# What serves it: trytond's own command is Werkzeug's development server, one Python process
# (one core at most, whatever the threads); under gunicorn, Tryton's WSGI application runs in
# several processes, as Tryton is run in production. Not in the template's hash: a server, not
# the database.
SERVER_REQUIREMENTS = ("gunicorn>=23,<28",)
DATABASE_RETRY = 20
# Bumped when ensure_template builds the database differently (its commands, their options).
BUILD_VERSION = "1"
MODULES = ("sale", "stock", "account_invoice", "account_invoice_stock", "hub_sale_reference")
# The demo's and the tests' skus (hub.demo.context.SKUS) with their starting stock; SKU-SCARCE
# has none, so an order for it fails out_of_stock until it is restocked.
STOCK: Mapping[str, int] = {**{f"SKU-{n:03d}": 100_000 for n in range(1, 11)}, "SKU-SCARCE": 0}
HUB_USER = "hub"
HUB_PASSWORD = "hub-sandbox-password"
ADMIN_PASSWORD = "admin-sandbox-password"
DEFAULT_PORT = 26900
DEFAULT_DATABASE = "hub_tryton"
# The PostgreSQL server (no database) the sandbox's databases and template live on. The tests
# set it to their own server (tests/conftest.py), so a suite never builds Tryton databases on
# the machine's PostgreSQL unless that is where its own test database is.
POSTGRES_ENV = "HUB_TRYTON_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def sandbox_postgres() -> str:
    return os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES).rstrip("/")


class TrytonSetupError(RuntimeError):
    """The local Tryton could not be installed, initialised or started; the message says why."""


@dataclass(frozen=True)
class TrytonSandbox:
    root: Path = Path("var/tryton")
    postgres: str = field(default_factory=sandbox_postgres)
    stock: Mapping[str, int] = field(default_factory=lambda: dict(STOCK))
    # Server processes, and threads in each (Tryton keeps its caches coherent between processes
    # through the database, as it does for a production server with several workers).
    workers: int = 2
    threads: int = 4

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    # ---- install -------------------------------------------------------------------------

    def ensure_venv(self) -> None:
        """Tryton in a virtual environment of its own (psycopg 3; the hub's has psycopg2)."""
        if not self.bin("trytond").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self._run([sys.executable, "-m", "venv", str(self.venv)], what="venv")
            self._run(
                [str(self.bin("pip")), "install", "--quiet", *REQUIREMENTS], what="pip install"
            )
        if not self.bin("gunicorn").exists():
            self._run(
                [str(self.bin("pip")), "install", "--quiet", *SERVER_REQUIREMENTS],
                what="pip install (server)",
            )
        self._install_modules()

    def _install_modules(self) -> None:
        target = self._site_modules()
        for source in MODULE_SOURCES.iterdir():
            if not (source / "tryton.cfg").exists():
                continue
            destination = target / source.name
            if destination.exists():
                shutil.rmtree(destination)
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))

    def _site_modules(self) -> Path:
        out = subprocess.run(
            [str(self.bin("python")), "-c", "import trytond.modules as m; print(m.__path__[0])"],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(out.stdout.strip())

    def config_file(self, port: int) -> Path:
        """trytond's configuration for a server on ``port`` (one file per port)."""
        files = (self.root / "files").resolve()
        files.mkdir(parents=True, exist_ok=True)
        path = self.root / f"trytond-{port}.conf"
        path.write_text(
            "[database]\n"
            f"uri = {self.postgres}/\n"
            f"path = {files}\n"
            # Tryton retries a call that met a lock (NOWAIT) this many times, 20 ms x n apart:
            # 20 is ~4 s of waiting, what a second invoice post needs while one holds the
            # invoice sequence (its default 5 is 0.3 s, then a 503).
            f"retry = {DATABASE_RETRY}\n"
            "[web]\n"
            f"listen = 127.0.0.1:{port}\n"
        )
        return path

    # ---- the template ------------------------------------------------------------------------

    def template_name(self) -> str:
        """Named by a hash of what goes into the database: the Tryton series, the modules (the
        hub's own module's files too), the master data script, the stock and the year (the
        fiscal year covers this year only). Only file contents count, never where the checkout
        is, and not this file's helpers: changing how a server is started rebuilds nothing.
        A change of how the database is built (the commands below) bumps BUILD_VERSION."""
        digest = hashlib.sha256()
        for part in (BUILD_VERSION, *REQUIREMENTS, *MODULES, str(date.today().year)):
            digest.update(part.encode())
        sources = [HERE / "master_data.py", *MODULE_SOURCES.rglob("*")]
        for source in sorted(sources, key=lambda p: p.relative_to(HERE).as_posix()):
            if source.is_file() and source.suffix in {".py", ".cfg", ".xml"}:
                digest.update(source.relative_to(HERE).as_posix().encode())
                digest.update(source.read_bytes())
        digest.update(repr(sorted(self.stock.items())).encode())
        return f"hub_tryton_tpl_{digest.hexdigest()[:12]}"

    def ensure_template(self) -> tuple[str, bool]:
        """The template's name, and whether it had to be built now (under a file lock, so two
        starters never build it twice)."""
        self.ensure_venv()
        name = self.template_name()
        with self._lock("template"):
            if self._exists(name):
                return name, False
            building = name + "_build"
            self._drop(building)
            self._execute(
                sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(building)
                )
            )
            conf = self.config_file(DEFAULT_PORT)
            env = {
                **os.environ,
                "TRYTONPASSFILE": str(self._pass_file()),
                # proteus reads the database URI from trytond's environment, not the file.
                "TRYTOND_CONFIG": str(conf.resolve()),
                "TRYTOND_DATABASE__URI": self.postgres + "/",
            }
            self._run(
                [
                    str(self.bin("trytond-admin")),
                    "-c",
                    str(conf),
                    "-d",
                    building,
                    "--all",
                    "--email",
                    "admin@example.com",
                    "-vv",
                ],
                what="trytond-admin --all",
                env=env,
            )
            self._run(
                [
                    str(self.bin("trytond-admin")),
                    "-c",
                    str(conf),
                    "-d",
                    building,
                    "-u",
                    *MODULES,
                    "--activate-dependencies",
                ],
                what="trytond-admin -u",
                env=env,
            )
            pairs = [f"{sku}={qty}" for sku, qty in self.stock.items()]
            self._run(
                [
                    str(self.bin("python")),
                    str(HERE / "master_data.py"),
                    str(conf),
                    building,
                    HUB_PASSWORD,
                    *pairs,
                ],
                what="master data",
                env=env,
            )
            self._execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(building), sql.Identifier(name)
                )
            )
            return name, True

    def create_database(self, database: str, *, fresh: bool = True) -> bool:
        """``database`` as a copy of the template (dropped first when ``fresh``); False when it
        existed and was kept."""
        template, _ = self.ensure_template()
        if not fresh and self._exists(database):
            return False
        self._drop(database)
        with self._lock("template"):
            self._execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(database), sql.Identifier(template)
                )
            )
        return True

    def drop_database(self, database: str) -> None:
        self._drop(database)

    def connect(self, database: str) -> psycopg2.extensions.connection:
        """A connection to one of the sandbox's databases (the tests read Tryton's tables)."""
        return psycopg2.connect(f"{self.postgres}/{database}")

    # ---- the server --------------------------------------------------------------------------

    def start(
        self, *, port: int, databases: list[str], log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Tryton's WSGI application on 127.0.0.1:``port`` under gunicorn (``workers``
        processes of ``threads`` threads) serving ``databases``, once it answers. (Tryton 8.2
        loads a database's pool at start-up only: one named later answers KeyError 'res.user'.)
        The server is the leader of a process group of its own: killing the group kills every
        worker with it."""
        conf = self.config_file(port)
        out = open(log or self.root / f"trytond-{port}.log", "ab")  # noqa: SIM115 - the child's
        env = {
            **os.environ,
            "TRYTOND_CONFIG": str(conf.resolve()),
            "TRYTOND_DATABASE_NAMES": ",".join(databases),
            "TRYTOND_LOGGING_LEVEL": "30",
        }
        process = subprocess.Popen(
            [
                str(self.bin("gunicorn")),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                # A call may take seconds on a busy machine (an invoice's post): gunicorn's
                # default 30 s would kill a worker that is merely slow.
                "--timeout",
                "120",
                "trytond.application:app",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        out.close()
        wait_until_up(f"http://127.0.0.1:{port}", process=process)
        return process

    # ---- helpers -----------------------------------------------------------------------------

    def _pass_file(self) -> Path:
        path = self.root / "admin-password"
        path.write_text(ADMIN_PASSWORD)
        return path

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _connect(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(self.postgres + "/postgres")
        connection.autocommit = True
        return connection

    def _execute(self, statement: sql.Composable) -> None:
        with contextlib.closing(self._connect()) as connection, connection.cursor() as cursor:
            cursor.execute(statement)

    def _exists(self, database: str) -> bool:
        with contextlib.closing(self._connect()) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            return cursor.fetchone() is not None

    def _drop(self, database: str) -> None:
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )

    def _run(self, command: list[str], *, what: str, env: Mapping[str, str] | None = None) -> None:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
            raise TrytonSetupError(f"{what} failed ({done.returncode}):\n" + "\n".join(tail))


def wait_until_up(
    url: str, *, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0
) -> None:
    """Until Tryton's web server answers at ``url`` (any HTTP answer but a 5xx)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TrytonSetupError(f"trytond exited with {process.returncode} (see its log)")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/", timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise TrytonSetupError(f"trytond did not answer at {url} within {timeout:.0f} s")


# What Tryton takes at once (docs/erp-tryton.md): an invoice's post takes the invoice sequence's
# row lock (a strict sequence: numbers without gaps) until it commits; the invoice's rendering
# runs after the commit. Two posts in flight overlap one's rendering with the other's numbering
# (the 30-order e2e: 63 s instead of 90 s); more only wait for the lock. That takes Tryton's
# retry raised (DATABASE_RETRY): with its default a waiting post gives up as 503 in 0.3 s and
# a run of them opens the breaker. Stock assignment locks the products' moves: a few at once.
TRYTON_LIMITS = {
    "HUB_ERP_MAX_IN_FLIGHT": "4",
    "HUB_WAREHOUSE_MAX_IN_FLIGHT": "4",
    "HUB_ACCOUNTING_MAX_IN_FLIGHT": "2",
}


class LocalTryton:
    """One trytond serving one database copied from the template, which a test or the bench
    can SIGKILL and start again (the database survives; Tryton's sessions live in it)."""

    def __init__(self, sandbox: TrytonSandbox, *, database: str, port: int) -> None:
        self.sandbox = sandbox
        self.database = database
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hub_env(self) -> dict[str, str]:
        """The hub's HUB_TRYTON__* settings for this server, and every system on it."""
        return {
            "HUB_ERP_ADAPTER": "tryton",
            "HUB_WAREHOUSE_ADAPTER": "tryton",
            "HUB_ACCOUNTING_ADAPTER": "tryton",
            "HUB_TRYTON__URL": self.url,
            "HUB_TRYTON__DATABASE": self.database,
            "HUB_TRYTON__USER": HUB_USER,
            "HUB_TRYTON__PASSWORD": HUB_PASSWORD,
            **TRYTON_LIMITS,
        }

    def start(self) -> None:
        self.process = self.sandbox.start(port=self.port, databases=[self.database])

    def kill(self) -> None:
        """SIGKILL the server (whatever call it was serving is cut off mid-way)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def local_tryton(database: str, port: int) -> Iterator[LocalTryton]:
    """A fresh copy of the template served on ``port``; stopped and dropped at the end."""
    sandbox = TrytonSandbox()
    sandbox.create_database(database)
    server = LocalTryton(sandbox, database=database, port=port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        sandbox.drop_database(database)
