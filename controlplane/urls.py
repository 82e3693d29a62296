from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from controlplane import views

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
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("rq/", include("django_rq.urls")),
]
