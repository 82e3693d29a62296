from django.urls import path

from controlplane.alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("rules/", views.rules_save, name="rules_save"),
    path("channels/", views.channel_add, name="channel_add"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("test/", views.send_test, name="send_test"),
    path("history/", views.history, name="history"),
]
