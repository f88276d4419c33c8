"""Typed keys of the long-lived components on the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from daemon.changes.ledger import ChangeLedger
from daemon.clock import Clock
from daemon.config import LoadedConfig
from daemon.drills.runner import DrillRunner
from daemon.drills.schedule import DrillSchedule
from daemon.ingest.ratelimit import RateLimiter
from daemon.metrics.counters import CounterStore, PersistedHistogram
from daemon.pipeline import Pipeline
from daemon.runbook.engine import Engine
from daemon.storage.reader import Reader
from daemon.storage.writer import GroupCommitWriter


@dataclass
class Health:
    started: bool = False
    draining: bool = False


CONFIG = web.AppKey("config", LoadedConfig)
PIPELINE = web.AppKey("pipeline", Pipeline)
READER = web.AppKey("reader", Reader)
COUNTERS = web.AppKey("counters", CounterStore)
INGEST_DURATION = web.AppKey("ingest_duration", PersistedHistogram)
HEALTH = web.AppKey("health", Health)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
CLOCK = web.AppKey("clock", Clock)
WRITER = web.AppKey("writer", GroupCommitWriter)
ENGINE = web.AppKey("engine", Engine)
CHANGES = web.AppKey("changes", ChangeLedger)
DRILLS = web.AppKey("drills", DrillRunner)
DRILL_SCHEDULE = web.AppKey("drill_schedule", DrillSchedule)
