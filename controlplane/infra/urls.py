from django.urls import path

from controlplane.infra import views

app_name = "infra"

urlpatterns = [
    path("", views.plan, name="plan"),
    path("apply/", views.apply, name="apply"),
    path("destroy/", views.destroy, name="destroy"),
    path("audit/", views.audit, name="audit"),
    path("preflight/", views.preflight, name="preflight"),
    path("runs/<str:run_id>/", views.run, name="run"),
]
