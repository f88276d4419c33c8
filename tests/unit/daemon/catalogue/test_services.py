from __future__ import annotations

from daemon.catalogue.services import Catalogue, Service, Target


def catalogue() -> Catalogue:
    return Catalogue.model_validate(
        {
            "default_service": "orphans",
            "default_tier": "low",
            "targets": {"P1": {"respond": "5m", "resolve": "1h"}},
            "services": [
                {"name": "checkout", "tier": "high", "matchers": ['service=~"checkout|pay"', 'env="prod"']},
                {"name": "search", "targets": {"P1": {"respond": "2m"}, "P5": {"resolve": "30d"}}},
            ],
        }
    )


def test_first_matching_service_wins_and_matchers_replace_the_label() -> None:
    c = catalogue()
    assert c.match({"service": "pay", "env": "prod"})[0].name == "checkout"
    assert c.match({"service": "checkout", "env": "dev"})[0].name == "orphans"
    service, why = c.match({"service": "search"})
    assert (service.name, why) == ("search", "label service=search")


def test_unmatched_alerts_go_to_the_default_service_never_dropped() -> None:
    service, why = catalogue().match({"alertname": "X"})
    assert (service.name, service.tier) == ("orphans", "low")
    assert "default_service" in why
    assert catalogue().names() == ["checkout", "search", "orphans"]


def test_targets_default_then_catalogue_then_service() -> None:
    c = catalogue()
    search = c.get("search")
    assert c.target(search, "P1") == Target(respond=120.0, resolve=3600.0)  # respond overridden, resolve kept
    assert c.target(c.get("checkout"), "P1") == Target(respond=300.0, resolve=3600.0)
    assert c.target(c.get("checkout"), "P2") == Target(respond=1800.0, resolve=8 * 3600.0)  # built-in default
    assert c.target(c.get("checkout"), "P5") == Target()  # by agreement: no clock
    assert c.target(search, "P5") == Target(respond=None, resolve=30 * 86400.0)


def test_listed_default_service_keeps_its_own_settings() -> None:
    c = Catalogue(services=(Service(name="unknown", tier="high"),))
    assert c.match({})[0].tier == "high"
    assert c.names() == ["unknown"]
