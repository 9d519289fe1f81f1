"""Token-at-rest key loading and token lifetimes, without any server."""

from __future__ import annotations

import datetime as dt
import stat

from cryptography.fernet import Fernet

from ledgerbridge.connectors.qbo import auth
from ledgerbridge.settings import Settings

T0 = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)


def test_load_fernet_uses_configured_key(tmp_path):
    key = Fernet.generate_key()
    fernet = auth.load_fernet(Settings(token_key=key.decode(), data_dir=tmp_path))
    assert Fernet(key).decrypt(fernet.encrypt(b"x")) == b"x"
    assert not (tmp_path / "token.key").exists()


def test_load_fernet_creates_private_key_file_once(tmp_path):
    settings = Settings(token_key=None, data_dir=tmp_path / "data")
    first = auth.load_fernet(settings)
    path = tmp_path / "data" / "token.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = auth.load_fernet(settings)
    assert second.decrypt(first.encrypt(b"token")) == b"token"


def test_token_set_lifetimes_count_from_request_time():
    tokens = auth._token_set(
        {
            "access_token": "a",
            "refresh_token": "r",
            "expires_in": 3600,
            "x_refresh_token_expires_in": 8726400,
        },
        T0,
    )
    assert tokens.access_expires_at == T0 + dt.timedelta(hours=1)
    assert tokens.refresh_expires_at == T0 + dt.timedelta(seconds=8726400)


def test_token_set_without_refresh_lifetime():
    tokens = auth._token_set({"access_token": "a", "refresh_token": "r"}, T0)
    assert tokens.access_expires_at == T0 + dt.timedelta(hours=1)
    assert tokens.refresh_expires_at is None
