from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from controlplane.api import alerts, views

app_name = "api"

urlpatterns = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="docs"),
    path("health/", views.health, name="health"),
    path("classifications/", views.classifications, name="classifications"),
    path("failures/", views.failures, name="failures"),
    path("failures/requeue/", views.failure_requeue, name="failure_requeue"),
    path("failures/requeue-all/", views.failure_requeue_all, name="failure_requeue_all"),
    path("failures/dismiss/", views.failure_dismiss, name="failure_dismiss"),
    path("dead-letters/", views.dead_letters, name="dead_letters"),
    path("objects/", views.object_story, name="object"),
    path("listener/<str:action>/", views.listener_control, name="listener_control"),
    path("upload/", views.upload, name="upload"),
    path("reconcile/", views.reconcile, name="reconcile"),
    path("infra/plan/", views.infra_plan, name="infra_plan"),
    path("infra/apply/", views.infra_apply, name="infra_apply"),
    path("infra/destroy/", views.infra_destroy, name="infra_destroy"),
    path("infra/audit/", views.infra_audit, name="infra_audit"),
    path("infra/preflight/", views.infra_preflight, name="infra_preflight"),
    path("infra/runs/<str:run_id>/", views.infra_run, name="infra_run"),
    path("alerts/rules/", alerts.rules, name="alert_rules"),
    path("alerts/rules/<str:kind>/", alerts.rule, name="alert_rule"),
    path("alerts/channels/", alerts.channels, name="alert_channels"),
    path("alerts/channels/<int:channel_id>/", alerts.channel, name="alert_channel"),
    path("alerts/test/", alerts.send_test, name="alert_test"),
    path("alerts/notifications/", alerts.notifications, name="alert_notifications"),
]
