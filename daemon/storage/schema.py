"""Versioned schema migrations. Append only: a released migration is never edited."""

from __future__ import annotations

APPLICATION_ID = 0x6974736D  # "itsm": tells an itsmd database from any other SQLite file

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE alerts (
            fingerprint   TEXT PRIMARY KEY,
            labels        TEXT NOT NULL,
            annotations   TEXT NOT NULL,
            status        TEXT NOT NULL,
            starts_at     REAL NOT NULL,
            ends_at       REAL,
            generator_url TEXT NOT NULL,
            sources       INTEGER NOT NULL,
            first_seen    REAL NOT NULL,
            last_seen     REAL NOT NULL,
            times_seen    INTEGER NOT NULL,
            state_changes INTEGER NOT NULL,
            expires_at    REAL,
            incident_id   INTEGER
        );
        CREATE INDEX alerts_status ON alerts (status);
        CREATE TABLE incidents (
            id            INTEGER PRIMARY KEY,
            key           TEXT NOT NULL,
            service       TEXT NOT NULL,
            title         TEXT NOT NULL,
            status        TEXT NOT NULL,
            opened_at     REAL NOT NULL,
            resolved_at   REAL,
            reopen_count  INTEGER NOT NULL
        );
        CREATE INDEX incidents_status ON incidents (status, id);
        CREATE INDEX incidents_key ON incidents (key, id);
        CREATE TABLE incident_alerts (
            incident_id   INTEGER NOT NULL REFERENCES incidents (id),
            fingerprint   TEXT NOT NULL,
            starts_at     REAL NOT NULL,
            attached_at   REAL NOT NULL,
            ended_at      REAL,
            PRIMARY KEY (incident_id, fingerprint, starts_at)
        );
        CREATE TABLE timeline (
            id            INTEGER PRIMARY KEY,
            incident_id   INTEGER NOT NULL REFERENCES incidents (id),
            at            REAL NOT NULL,
            kind          TEXT NOT NULL,
            detail        TEXT NOT NULL
        );
        CREATE INDEX timeline_incident ON timeline (incident_id, id);
        CREATE TABLE counters (
            name          TEXT NOT NULL,
            labels        TEXT NOT NULL,
            value         REAL NOT NULL,
            PRIMARY KEY (name, labels)
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE incidents ADD COLUMN priority TEXT NOT NULL DEFAULT 'P3';
        ALTER TABLE incidents ADD COLUMN rule TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE incidents ADD COLUMN signature TEXT NOT NULL DEFAULT '';
        ALTER TABLE incidents ADD COLUMN acknowledged_at REAL;
        ALTER TABLE incidents ADD COLUMN closed_at REAL;
        ALTER TABLE incidents ADD COLUMN resolved_by TEXT;
        ALTER TABLE incidents ADD COLUMN last_attached_at REAL NOT NULL DEFAULT 0;
        ALTER TABLE incidents ADD COLUMN respond_by REAL;
        ALTER TABLE incidents ADD COLUMN resolve_by REAL;
        ALTER TABLE incidents ADD COLUMN sla TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE incidents ADD COLUMN flapping TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE incidents ADD COLUMN problem_id INTEGER;
        ALTER TABLE incidents ADD COLUMN workaround TEXT;
        ALTER TABLE incidents ADD COLUMN suspected_change INTEGER;
        UPDATE incidents SET last_attached_at = opened_at;
        CREATE INDEX incidents_signature ON incidents (signature, opened_at);
        CREATE TABLE problems (
            id            INTEGER PRIMARY KEY,
            signature     TEXT NOT NULL,
            service       TEXT NOT NULL,
            title         TEXT NOT NULL,
            status        TEXT NOT NULL,
            opened_at     REAL NOT NULL,
            updated_at    REAL NOT NULL,
            resolved_at   REAL,
            root_cause    TEXT NOT NULL,
            workaround    TEXT NOT NULL,
            runbook       TEXT
        );
        CREATE INDEX problems_status ON problems (status, id);
        CREATE TABLE problem_incidents (
            problem_id    INTEGER NOT NULL REFERENCES problems (id),
            incident_id   INTEGER NOT NULL REFERENCES incidents (id),
            linked_at     REAL NOT NULL,
            PRIMARY KEY (problem_id, incident_id)
        );
        CREATE INDEX problem_incidents_incident ON problem_incidents (incident_id);
        CREATE TABLE audit_events (
            id            INTEGER PRIMARY KEY,
            at            REAL NOT NULL,
            actor         TEXT NOT NULL,
            record_type   TEXT NOT NULL,
            record_id     TEXT NOT NULL,
            action        TEXT NOT NULL,
            before        TEXT,
            after         TEXT
        );
        CREATE INDEX audit_events_record ON audit_events (record_type, record_id, id);
        CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
        CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
        -- Incident counters now carry a catalogue service and a priority; the old series (raw service label
        -- values, no priority) do not fit the new label set, and the totals are recountable from incidents.
        DELETE FROM counters WHERE name IN
            ('itsmd_incidents_opened_total', 'itsmd_incidents_resolved_total', 'itsmd_incidents_reopened_total');
        """,
    ),
    (
        3,
        """
        CREATE TABLE runs (
            id            INTEGER PRIMARY KEY,
            runbook       TEXT NOT NULL,
            version       TEXT NOT NULL,
            mode          TEXT NOT NULL,
            status        TEXT NOT NULL,
            params        TEXT NOT NULL,
            trigger       TEXT NOT NULL,
            requested_by  TEXT NOT NULL,
            incident_id   INTEGER,
            service       TEXT,
            emergency     INTEGER NOT NULL,
            created_at    REAL NOT NULL,
            started_at    REAL,
            ended_at      REAL,
            reason        TEXT NOT NULL,
            lock_key      TEXT,
            breaker_key   TEXT
        );
        CREATE INDEX runs_status ON runs (status, id);
        CREATE INDEX runs_breaker ON runs (runbook, breaker_key, created_at);
        CREATE TABLE run_steps (
            run_id        INTEGER NOT NULL REFERENCES runs (id),
            idx           INTEGER NOT NULL,
            step_index    INTEGER NOT NULL,
            name          TEXT NOT NULL,
            phase         TEXT NOT NULL,
            status        TEXT NOT NULL,
            attempts      INTEGER NOT NULL,
            started_at    REAL NOT NULL,
            ended_at      REAL,
            summary       TEXT NOT NULL,
            output_digest TEXT NOT NULL,
            output        TEXT NOT NULL,
            plan          TEXT NOT NULL,
            data          TEXT NOT NULL,
            PRIMARY KEY (run_id, idx)
        );
        """,
    ),
    (
        4,
        """
        CREATE TABLE changes (
            id              INTEGER PRIMARY KEY,
            run_id          INTEGER NOT NULL,
            runbook         TEXT NOT NULL,
            runbook_version TEXT NOT NULL,
            mode            TEXT NOT NULL,
            change_type     TEXT NOT NULL,
            risk            TEXT NOT NULL,
            service         TEXT,
            incident_id     INTEGER,
            requested_by    TEXT NOT NULL,
            trigger         TEXT NOT NULL,
            run_status      TEXT NOT NULL,
            outcome         TEXT,
            reason          TEXT NOT NULL,
            created_at      REAL NOT NULL,
            started_at      REAL,
            ended_at        REAL
        );
        CREATE INDEX changes_run ON changes (run_id);
        CREATE INDEX changes_service ON changes (service, id);
        CREATE INDEX changes_open ON changes (outcome, id);
        CREATE TABLE change_events (
            id            INTEGER PRIMARY KEY,
            change_id     INTEGER NOT NULL REFERENCES changes (id),
            at            REAL NOT NULL,
            kind          TEXT NOT NULL,
            detail        TEXT NOT NULL
        );
        CREATE INDEX change_events_change ON change_events (change_id, id);
        CREATE TABLE change_incidents (
            change_id     INTEGER NOT NULL REFERENCES changes (id),
            incident_id   INTEGER NOT NULL,
            at            REAL NOT NULL,
            reason        TEXT NOT NULL,
            PRIMARY KEY (change_id, incident_id)
        );
        """,
    ),
    (
        5,
        """
        CREATE TABLE drill_runs (
            id                 INTEGER PRIMARY KEY,
            drill              TEXT NOT NULL,
            service            TEXT NOT NULL,
            trigger            TEXT NOT NULL,
            requested_by       TEXT NOT NULL,
            outcome            TEXT NOT NULL,
            reason             TEXT NOT NULL,
            run_id             INTEGER,
            started_at         REAL NOT NULL,
            ended_at           REAL,
            recovery_seconds   REAL,
            rto_seconds        REAL NOT NULL,
            rpo_seconds        REAL,
            data_loss_seconds  REAL
        );
        CREATE INDEX drill_runs_drill ON drill_runs (drill, id);
        CREATE INDEX drill_runs_service ON drill_runs (service, outcome, id);
        CREATE INDEX drill_runs_started ON drill_runs (started_at);
        """,
    ),
    (
        6,
        """
        -- Whether a step's action began (0: refused before it started, so no rollback is owed). Steps
        -- journaled before this column existed count as started: a rollback too many beats one too few.
        ALTER TABLE run_steps ADD COLUMN started INTEGER NOT NULL DEFAULT 1;
        -- A lock key is the runbook's own unless the runbook says concurrency.scope: global.
        ALTER TABLE runs ADD COLUMN lock_scope TEXT NOT NULL DEFAULT 'runbook';
        -- The run-level approval as JSON: when it was asked (its timeout counts from then, across restarts),
        -- the rendered message, and who decided, why and when.
        ALTER TABLE runs ADD COLUMN approval TEXT;
        -- The change's copy of that decision (evidence kept with the change record).
        ALTER TABLE changes ADD COLUMN approval TEXT;
        """,
    ),
    (
        7,
        """
        -- The audit chain (daemon/audit/chain.py): a contiguous sequence number and a keyed mac per event.
        -- Events written before this version keep NULL in both; the chain's first event seals them.
        ALTER TABLE audit_events ADD COLUMN seq INTEGER;
        ALTER TABLE audit_events ADD COLUMN mac TEXT;
        CREATE UNIQUE INDEX audit_events_seq ON audit_events (seq);
        """,
    ),
    (
        8,
        """
        -- Incident assignment: the principal working it (NULL: nobody) and the team it is with. Incidents
        -- opened before this version have no team recorded (NULL); lists count them for their service's team.
        ALTER TABLE incidents ADD COLUMN assignee TEXT;
        ALTER TABLE incidents ADD COLUMN team TEXT;
        CREATE INDEX incidents_assignee ON incidents (assignee, id);
        """,
    ),
    (
        9,
        """
        -- The webhook outbox (daemon/notify/outbox): one row per event and receiver, written in the same
        -- transaction as the change that caused the event; state pending | delivered | dead.
        CREATE TABLE outbox (
            event_id      TEXT NOT NULL,
            receiver      TEXT NOT NULL,
            seq           INTEGER NOT NULL,
            kind          TEXT NOT NULL,
            incident_id   INTEGER,
            created_at    REAL NOT NULL,
            body          TEXT NOT NULL,
            state         TEXT NOT NULL,
            attempts      INTEGER NOT NULL,
            next_attempt  REAL NOT NULL,
            last_error    TEXT NOT NULL,
            updated_at    REAL NOT NULL,
            PRIMARY KEY (event_id, receiver)
        );
        CREATE INDEX outbox_state ON outbox (state, seq);
        -- The incident's external ticket (PUT /api/v1/incidents/{id}/external): JSON {system, key, url}.
        ALTER TABLE incidents ADD COLUMN external TEXT;
        """,
    ),
    (
        10,
        """
        -- Retention (daemon/housekeeping): rollups that keep past figures exact after the rows behind them
        -- are pruned, and the indexes the prune statements look up by.
        -- Downtime per service and UTC day [day_start, day_start + 1d), folded from the incident history.
        CREATE TABLE availability_daily (
            service           TEXT NOT NULL,
            day_start         REAL NOT NULL,
            unplanned_seconds REAL NOT NULL,
            planned_seconds   REAL NOT NULL,
            PRIMARY KEY (service, day_start)
        );
        -- How far a rollup reaches (name -> every instant before until_at is rolled up).
        CREATE TABLE rollup_marks (
            name          TEXT PRIMARY KEY,
            until_at      REAL NOT NULL
        );
        -- A month's service report as it stood before its rows could be pruned (JSON of the report model).
        CREATE TABLE report_months (
            period        TEXT NOT NULL,
            time_zone     TEXT NOT NULL,
            frozen_at     REAL NOT NULL,
            body          TEXT NOT NULL,
            PRIMARY KEY (period, time_zone)
        );
        CREATE INDEX incident_alerts_fingerprint ON incident_alerts (fingerprint);
        CREATE INDEX change_incidents_incident ON change_incidents (incident_id);
        CREATE INDEX incidents_resolved_at ON incidents (resolved_at);
        -- `itsmd audit archive` (daemon/audit/archive.py): each cut records where the archived part of the
        -- chain ends (its last event's seq, mac and id) and a keyed mac over that, so the chain stays
        -- verifiable across it. Events up to a cut's id are the only ones that may be deleted.
        CREATE TABLE audit_cuts (
            through_seq    INTEGER PRIMARY KEY,
            through_mac    TEXT NOT NULL,
            through_id     INTEGER NOT NULL,
            at             REAL NOT NULL,
            events         INTEGER NOT NULL,
            archive_sha256 TEXT NOT NULL,
            mac            TEXT NOT NULL
        );
        CREATE TRIGGER audit_cuts_append_only_update BEFORE UPDATE ON audit_cuts
        BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END;
        CREATE TRIGGER audit_cuts_append_only_delete BEFORE DELETE ON audit_cuts
        BEGIN SELECT RAISE(ABORT, 'audit cuts are append-only'); END;
        DROP TRIGGER audit_events_append_only_delete;
        CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
        WHEN NOT EXISTS (SELECT 1 FROM audit_cuts c WHERE OLD.id <= c.through_id)
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
        """,
    ),
    (
        11,
        # The incident list reads each incident's latest `resolved` entry; without this (partial, so it holds
        # only those rows and costs ingest nothing) that walked an unresolved incident's whole timeline: 354 ms
        # for 50 open incidents of 2,000 alerts each.
        """
        CREATE INDEX timeline_resolved ON timeline (incident_id, id) WHERE kind = 'resolved';
        -- Start-up reads the alerts ended within alerts.resolved_retention by status and end time, not every
        -- alert kept (bench/startup.py); `status` alone is a prefix of it.
        DROP INDEX alerts_status;
        CREATE INDEX alerts_status ON alerts (status, ends_at);
        """,
    ),
    (
        12,
        # Start-up finds each open incident's latest alert end in its current episode (incidents.py,
        # _restore_end); without this it walked the episode's every `alert_firing` entry: 0.2-0.3 s for 50
        # open incidents of 2,000 alerts each. Partial: firing entries, the bulk of a timeline, are not in it.
        """
        CREATE INDEX timeline_episode_ends ON timeline (incident_id, id)
        WHERE kind IN ('opened', 'reopened', 'alert_resolved', 'alert_expired');
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]
