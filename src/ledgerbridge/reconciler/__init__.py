"""Drift detection for webhooks that never arrived."""
