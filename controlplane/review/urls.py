from django.urls import path

from controlplane.review import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("verdict/", views.verdict, name="verdict"),
]
