from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Sightline control plane"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from controlplane import audit

        user_login_failed.connect(audit.login_failed, dispatch_uid="sightline-audit-login-failed")
