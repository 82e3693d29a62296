"""Run the whole thing locally: emulators, Redis, web, listener and a worker, supervised."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from controlplane.reconcile import reconcile_run
from controlplane.secretfiles import secret_read_or_create
from devstack import localstack

log = logging.getLogger("controlplane.runlocal")


class Command(BaseCommand):
    help = "Start and supervise the local stack and the app's processes; Ctrl-C stops everything."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default=os.environ.get("SIGHTLINE_WEB_ADDR", "127.0.0.1:8000"))
        # Default WORKERS (2): each gets TORCH_THREADS = cores / workers, so one overlaps I/O with the other's inference.
        parser.add_argument("--workers", type=int, default=settings.SIGHTLINE.workers)

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGHTLINE
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            second = localstack.reprocess_worker_model(os.environ)
            stack = localstack.start(cfg)
        except localstack.StackError as exc:
            raise CommandError(str(exc)) from None
        try:
            call_command("migrate", interactive=False, verbosity=0)
            password = self._ensure_admin()
            env = localstack.app_env(cfg)
            apps = [localstack.web_service(cfg, env, options["addr"]), localstack.listener_service(cfg, env)]
            apps.append(localstack.infra_service(cfg, env))
            apps.append(localstack.alerts_service(cfg, env))
            apps += [localstack.worker_service(cfg, env, name=f"worker-{i + 1}") for i in range(options["workers"])]
            if second is not None:  # a worker holding another model, for the Reprocess page
                apps.append(localstack.worker_service(cfg, env, name=f"worker-{second}", model=second))
            for service in apps:
                service.start()
                stack.services.append(service)
            # The Pub/Sub emulator keeps nothing across restarts: catch up on what arrived while the stack was down.
            self.stdout.write(f"reconcile: {reconcile_run(cfg=cfg, dry_run=False).summary()}")
            self.stdout.write(
                self.style.SUCCESS(f"\nSightline is up: http://{options['addr']}/  (log in as admin / {password})\n")
                + f"Bucket gs://{cfg.bucket} on {cfg.storage_emulator_host}; logs in {cfg.data_dir / 'logs'}; Ctrl-C stops.\n"
            )
            while not stop.wait(2):
                stack.supervise_once()
        finally:
            self.stdout.write("stopping...")
            stack.stop()

    def _ensure_admin(self) -> str:
        """A local admin whose password is kept in the data folder (or given as SIGHTLINE_ADMIN_PASSWORD)."""
        path = settings.SIGHTLINE.data_dir / "admin-password"
        password = os.environ.get("SIGHTLINE_ADMIN_PASSWORD") or secret_read_or_create(
            path, lambda: secrets.token_urlsafe(12)
        )
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if not user.check_password(password):
            user.set_password(password)
            user.save()
        return password
