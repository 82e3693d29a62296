"""The alert settings and history for scripts: the twins of the alert pages."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.alerts import evaluate, services
from controlplane.alerts.models import Channel, Notification, Rule
from controlplane.alerts.rules import SPECS, rules_ensure
from controlplane.api.auth import IsStaff


class RuleOut(serializers.ModelSerializer):
    title = serializers.SerializerMethodField()

    class Meta:
        model = Rule
        fields = [
            "kind", "title", "enabled", "threshold", "for_s", "reminder_minutes",
            "firing", "pending_since", "firing_since", "evaluated_at", "value", "detail",
        ]  # fmt: skip

    def get_title(self, rule: Rule) -> str:
        return SPECS[rule.kind].title


class RuleIn(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    threshold = serializers.FloatField(required=False, allow_null=True, min_value=0)
    for_s = serializers.IntegerField(required=False, min_value=0)
    reminder_minutes = serializers.IntegerField(required=False, min_value=0)


class ChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "kind", "target", "enabled", "created_at"]
        read_only_fields = ["id", "enabled", "created_at"]


class NotificationOut(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = [
            "id",
            "created_at",
            "rule_kind",
            "event",
            "channel_label",
            "title",
            "text",
            "status",
            "error",
            "sent_at",
        ]


@extend_schema(responses=RuleOut(many=True), summary="Alert rules with their settings and current state")
@api_view(["GET"])
def rules(request: Request) -> Response:
    return Response(RuleOut(rules_ensure(), many=True).data)


@extend_schema(request=RuleIn, responses=RuleOut, summary="Change a rule's settings")
@api_view(["PATCH"])
@permission_classes([IsStaff])
def rule(request: Request, kind: str) -> Response:
    rules_ensure()
    target = get_object_or_404(Rule, kind=kind)
    changes = RuleIn(data=request.data)
    changes.is_valid(raise_exception=True)
    updated = services.rule_update(rule=target, changes=dict(changes.validated_data), user=request.user.get_username())
    return Response(RuleOut(updated).data)


@extend_schema(methods=["GET"], responses=ChannelSerializer(many=True), summary="Where alerts go")
@extend_schema(methods=["POST"], request=ChannelSerializer, responses=ChannelSerializer, summary="Add a channel")
@api_view(["GET", "POST"])
def channels(request: Request) -> Response:
    if request.method == "GET":
        return Response(ChannelSerializer(Channel.objects.all(), many=True).data)
    data: dict[str, Any] = request.data if isinstance(request.data, dict) else {}
    try:
        made = services.channel_create(
            kind=str(data.get("kind", "")), target=str(data.get("target", "")), user=request.user.get_username()
        )
    except ValidationError as exc:
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    return Response(ChannelSerializer(made).data, status=status.HTTP_201_CREATED)


@extend_schema(responses={204: None}, summary="Remove a channel")
@api_view(["DELETE"])
@permission_classes([IsStaff])
def channel(request: Request, channel_id: int) -> Response:
    services.channel_delete(channel=get_object_or_404(Channel, pk=channel_id), user=request.user.get_username())
    return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(request=None, responses=NotificationOut(many=True), summary="Send a test message to every channel")
@api_view(["POST"])
@permission_classes([IsStaff])
def send_test(request: Request) -> Response:
    return Response(NotificationOut(evaluate.notify_test(user=request.user.get_username()), many=True).data)


@extend_schema(responses=NotificationOut(many=True), summary="Every notification, newest first (the last 200)")
@api_view(["GET"])
def notifications(request: Request) -> Response:
    return Response(NotificationOut(Notification.objects.all()[:200], many=True).data)
