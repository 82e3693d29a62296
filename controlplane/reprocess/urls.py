from django.urls import path

from controlplane.reprocess import views

app_name = "reprocess"

urlpatterns = [
    path("", views.page, name="page"),
    path("start/", views.start, name="start"),
    path("cancel/", views.cancel, name="cancel"),
    path("partials/progress/", views.progress, name="progress"),
]
