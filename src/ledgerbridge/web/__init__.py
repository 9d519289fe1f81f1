"""The web app: webhook ingest, JSON API, dashboard, health and metrics."""
