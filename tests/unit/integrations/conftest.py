from tests.unit.integrations.upstream import upstream

__all__ = ["upstream"]
