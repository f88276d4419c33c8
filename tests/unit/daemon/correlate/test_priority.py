from __future__ import annotations

import pytest

from daemon.correlate.priority import Level, PriorityRules


@pytest.mark.parametrize(
    ("tier", "severity", "priority"),
    [
        ("high", "critical", "P1"),
        ("high", "warning", "P2"),
        ("high", "info", "P3"),
        ("medium", "critical", "P2"),
        ("medium", "warning", "P3"),
        ("medium", "info", "P4"),
        ("low", "critical", "P3"),
        ("low", "warning", "P4"),
        ("low", "info", "P5"),
    ],
)
def test_default_matrix_is_itil_3x3(tier: Level, severity: str, priority: str) -> None:
    assessment = PriorityRules().assess({"severity": severity}, tier, "svc")
    assert assessment.priority == priority


def test_impact_label_overrides_the_service_tier() -> None:
    a = PriorityRules().assess({"severity": "critical", "impact": "low"}, "high", "checkout")
    assert (a.impact, a.impact_from, a.priority) == ("low", "label impact=low", "P3")


def test_impact_label_with_another_value_is_ignored() -> None:
    a = PriorityRules().assess({"severity": "critical", "impact": "massive"}, "high", "checkout")
    assert (a.impact, a.impact_from) == ("high", "tier of service checkout")


def test_unknown_or_missing_severity_uses_default_urgency() -> None:
    rules = PriorityRules()
    assert rules.assess({"severity": "bogus"}, "high", "s").urgency == "medium"
    missing = rules.assess({}, "high", "s")
    assert (missing.urgency, missing.priority) == ("medium", "P2")
    assert "no severity label" in missing.urgency_from


def test_configured_matrix_and_labels() -> None:
    rules = PriorityRules.model_validate(
        {
            "urgency_label": "level",
            "urgency": {"sev1": "high"},
            "default_urgency": "low",
            "matrix": {
                "high": {"high": "P1", "medium": "P1", "low": "P2"},
                "medium": {"high": "P2", "medium": "P3", "low": "P4"},
                "low": {"high": "P4", "medium": "P5", "low": "P5"},
            },
        }
    )
    assert rules.assess({"level": "sev1"}, "low", "s").priority == "P4"
    assert rules.assess({"severity": "critical"}, "high", "s").priority == "P2"
