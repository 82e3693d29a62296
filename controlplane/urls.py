from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from controlplane import views
from controlplane.api import pages as api_pages

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("partials/recent/", views.recent_partial, name="recent_partial"),
    path("partials/health/", views.health_partial, name="health_partial"),
    path("listener/<str:action>/", views.listener_control, name="listener_control"),
    path("upload/", views.upload, name="upload"),
    path("failures/", views.failures, name="failures"),
    path("failures/requeue/", views.failure_requeue, name="failure_requeue"),
    path("failures/requeue-all/", views.failure_requeue_all, name="failure_requeue_all"),
    path("failures/dismiss/", views.failure_dismiss, name="failure_dismiss"),
    path("reconcile/", views.reconcile, name="reconcile"),
    path("objects/", views.object_find, name="object_find"),
    path("objects/image/", views.object_image, name="object_image"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("infra/", include("controlplane.infra.urls")),
    path("alerts/", include("controlplane.alerts.urls")),
    path("review/", include("controlplane.review.urls")),
    path("insight/", include("controlplane.insight.urls")),
    path("reprocess/", include("controlplane.reprocess.urls")),
    path("account/", api_pages.account, name="account"),
    path("account/tokens/", api_pages.token_new, name="token_new"),
    path("account/tokens/<int:pk>/revoke/", api_pages.token_revoke, name="token_revoke"),
    path("api/v1/", include("controlplane.api.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("rq/", include("django_rq.urls")),
]
