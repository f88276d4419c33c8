"""Step actions by the key that names them in a runbook. Adding an action is one file and one line here."""

from __future__ import annotations

from daemon.runbook.actions.approval import ApprovalSpec
from daemon.runbook.actions.base import ActionSpec
from daemon.runbook.actions.exec import ExecSpec
from daemon.runbook.actions.http import HttpSpec
from daemon.runbook.actions.notify import NotifySpec
from daemon.runbook.actions.promql import PromqlSpec
from daemon.runbook.actions.silence import SilenceSpec
from daemon.runbook.actions.sleep import SleepSpec
from daemon.runbook.actions.wait_until import WaitUntilSpec

ACTIONS: dict[str, type[ActionSpec]] = {
    "exec": ExecSpec,
    "http": HttpSpec,
    "notify": NotifySpec,
    "sleep": SleepSpec,
    "approval": ApprovalSpec,
    "promql": PromqlSpec,
    "wait_until": WaitUntilSpec,
    "silence": SilenceSpec,
}
