"""Prometheus metrics, one registry per running service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "ledgerbridge_webhooks_total",
            "Webhook deliveries accepted, by source",
            ["source"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "ledgerbridge_sync_outcomes_total",
            "Finished sync jobs, by outcome",
            ["status"],
            registry=self.registry,
        )
        self.failures = Counter(
            "ledgerbridge_sync_failures_total",
            "Failed sync attempts; dead=true when no retry is left",
            ["dead"],
            registry=self.registry,
        )
        self.conflicts = Counter(
            "ledgerbridge_conflicts_opened_total",
            "Conflicts opened and held for a person",
            registry=self.registry,
        )
        self.reconciler_findings = Counter(
            "ledgerbridge_reconciler_findings_total",
            "Records the reconciler found out of step, by side",
            ["side"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "ledgerbridge_sync_job_seconds",
            "Wall time of one sync job",
            registry=self.registry,
        )
