from django.urls import path

from controlplane.insight import views

app_name = "insight"

urlpatterns = [
    path("labels/", views.labels, name="labels"),
    path("labels/one/", views.label_detail, name="label"),
    path("compare/", views.compare, name="compare"),
    path("export/", views.export_page, name="export_page"),
    path("export/<str:kind>/", views.export, name="export"),
]
