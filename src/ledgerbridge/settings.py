"""Configuration from the environment (``LEDGERBRIDGE_*``, plus ``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ledgerbridge", appauthor=False))


class Settings(BaseSettings):
    """Everything a LedgerBridge process can be told from outside."""

    model_config = SettingsConfigDict(env_prefix="LEDGERBRIDGE_", extra="ignore")

    # Without a database URL the demo starts an embedded PostgreSQL in data_dir.
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "LEDGERBRIDGE_DATABASE_URL"),
    )
    data_dir: Path = Field(default_factory=default_data_dir)

    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    # QuickBooks Online (the simulator by default; real Intuit URLs by configuration).
    qbo_base_url: str = "http://127.0.0.1:8001"
    qbo_token_url: str = "http://127.0.0.1:8001/oauth2/v1/tokens/bearer"
    qbo_authorize_url: str = "http://127.0.0.1:8001/connect/oauth2"
    qbo_revoke_url: str = "http://127.0.0.1:8001/oauth2/v1/tokens/revoke"
    qbo_client_id: str = "demo-client-id"
    qbo_client_secret: str = "demo-client-secret"
    qbo_verifier_token: str = "demo-qbo-verifier"
    qbo_minorversion: int = 75
    qbo_scope: str = "com.intuit.quickbooks.accounting"

    # The internal invoicing system.
    internal_base_url: str = "http://127.0.0.1:8002"
    internal_webhook_secret: str = "demo-internal-secret"
    internal_api_token: str = "demo-internal-token"

    # Fernet key (urlsafe base64, 32 bytes) encrypting OAuth tokens at rest.
    # When unset, a key is generated once and kept in data_dir/token.key.
    token_key: str | None = None

    # The dashboard's demo panel drives the simulators' control APIs (their
    # base URLs are qbo_base_url and internal_base_url). Only the demo sets it.
    demo_panel: bool = False

    webhook_tolerance_seconds: int = 300
    worker_concurrency: int = 4
    reconcile_interval_seconds: int = 60
    http_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    log_json: bool = False
