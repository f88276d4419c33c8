"""The two alert formats itsmd accepts, as Alertmanager 0.25 and Prometheus 2.42 send them.

* Webhook payload version 4 (Alertmanager's webhook_config): a group with mixed statuses, firing alerts
  carry endsAt 0001-01-01T00:00:00Z (a future endsAt is hidden), fingerprint given, truncatedAlerts counted.
* The v2 API body that Prometheus posts to an Alertmanager: a JSON array of alerts without status or
  fingerprint; an alert is resolved when its endsAt is not in the future.

Unknown extra fields are ignored, as Alertmanager does, so a newer sender still gets through; wrong types are
refused (strict mode: a label value 1 is not the string "1").
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

WEBHOOK_VERSION = "4"


@with_config(ConfigDict(strict=True, extra="ignore"))
class WebhookAlert(TypedDict):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    startsAt: datetime
    endsAt: NotRequired[datetime | None]
    generatorURL: NotRequired[str]
    fingerprint: str


@with_config(ConfigDict(strict=True, extra="ignore"))
class WebhookPayload(TypedDict):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: NotRequired[str]
    alerts: list[WebhookAlert]
    groupKey: NotRequired[str]
    groupLabels: NotRequired[dict[str, str]]
    commonLabels: NotRequired[dict[str, str]]
    commonAnnotations: NotRequired[dict[str, str]]
    externalURL: NotRequired[str]
    truncatedAlerts: NotRequired[int]


@with_config(ConfigDict(strict=True, extra="ignore"))
class PostableAlert(TypedDict):
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    startsAt: NotRequired[datetime | None]
    endsAt: NotRequired[datetime | None]
    generatorURL: NotRequired[str]


webhook_payload = TypeAdapter(WebhookPayload)
postable_alerts = TypeAdapter(list[PostableAlert])
