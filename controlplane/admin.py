from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from controlplane.auth import staff_required
from controlplane.infra.views import destroy_view
from controlplane.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the plan/apply/destroy services only. Also home of the teardown page."""

    list_display = ("created_at", "actor", "action", "outcome", "summary")
    list_filter = ("action", "outcome")
    search_fields = ("actor", "summary", "error")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "actor", "user", "action", "outcome", "summary", "checksum", "changes", "error")
    change_list_template = "admin/controlplane/auditlog/change_list.html"
    actions = ["teardown"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        teardown = self.admin_site.admin_view(staff_required(self.teardown_view))
        return [path("teardown/", teardown, name="controlplane_auditlog_teardown"), *super().get_urls()]

    def teardown_view(self, request: HttpRequest) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Tear down the stack"}
        return destroy_view(request, "admin/controlplane/auditlog/teardown.html", context)

    @admin.action(description="Tear down the whole stack (asks for confirmation)…")
    def teardown(self, request: HttpRequest, queryset: QuerySet[AuditLog]) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:controlplane_auditlog_teardown"))


admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockoutAdmin(AccessAttemptAdmin):
    """Failed logins and lockouts (django-axes): every staff member sees them and may lift a lock (delete the row)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)
