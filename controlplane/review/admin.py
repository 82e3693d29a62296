from django.contrib import admin

from controlplane.review.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("reviewed_at", "image_name", "generation", "model", "predicted_label", "verdict", "true_label")
    list_filter = ("verdict", "model")
    search_fields = ("image_name", "predicted_label", "true_label")
    readonly_fields = [f.name for f in Review._meta.fields]
