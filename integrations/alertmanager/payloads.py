"""The two alert formats itsmd accepts, as Alertmanager 0.25 and Prometheus 2.42 send them.

* Webhook payload version 4 (Alertmanager's webhook_config): a group with mixed statuses, firing alerts
  carry endsAt 0001-01-01T00:00:00Z (a future endsAt is hidden), fingerprint given, truncatedAlerts counted.
* The v2 API body that Prometheus posts to an Alertmanager: a JSON array of alerts without status or
  fingerprint; an alert is resolved when its endsAt is not in the future. As Alertmanager's own
  `POST /api/v2/alerts` does, it takes `null` for annotations and generatorURL, and `null` or `""` for
  startsAt and endsAt (itsmd reads both as unset).

Unknown extra fields are ignored, as Alertmanager does, so a newer sender still gets through; wrong types are
refused (strict mode: a label value 1 is not the string "1").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, GetPydanticSchema, TypeAdapter, with_config
from typing_extensions import TypedDict

WEBHOOK_VERSION = "4"


def _one_error(source: Any, handler: Any) -> Any:
    # One error naming the field, not one per member of the union (`startsAt.datetime`, `startsAt.literal['']`).
    schema = handler(source)
    schema["custom_error_type"] = "datetime_or_empty"
    schema["custom_error_message"] = "Input should be an RFC 3339 date-time, or empty"
    return schema


TimeOrEmpty = Annotated[datetime | Literal[""], GetPydanticSchema(_one_error)]
"""A time as Alertmanager's API takes it: "" is accepted too."""


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
    annotations: NotRequired[dict[str, str] | None]
    startsAt: NotRequired[TimeOrEmpty | None]
    endsAt: NotRequired[TimeOrEmpty | None]
    generatorURL: NotRequired[str | None]


webhook_payload = TypeAdapter(WebhookPayload)
postable_alerts = TypeAdapter(list[PostableAlert])
