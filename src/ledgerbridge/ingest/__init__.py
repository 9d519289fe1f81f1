"""Webhook ingest: verify, record, dedupe, enqueue. Never calls a connector."""
