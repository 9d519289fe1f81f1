"""OAuth 2.0 with Intuit, and rotating tokens stored encrypted per connection."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Any, LiteralString

import authlib.deprecate
import httpx
import psycopg
from cryptography.fernet import Fernet, InvalidToken
from psycopg_pool import AsyncConnectionPool

from ledgerbridge import errors
from ledgerbridge.clock import Clock
from ledgerbridge.connectors.qbo.errors import LOGGER_NAME, QboThrottled
from ledgerbridge.connectors.qbo.models import TokenSet
from ledgerbridge.settings import Settings

with warnings.catch_warnings():
    # Authlib warns at import that it falls back to httpx when httpx2 is not
    # installed; we use httpx on purpose. Its module installs an "always"
    # filter for that warning, so ours goes in after it.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri

logger = logging.getLogger(LOGGER_NAME)

# Refresh an access token this long before Intuit says it expires, so a token
# handed out is still good when the request reaches QBO.
REFRESH_MARGIN_SECONDS = 300
# A worker waiting for another one's refresh gives up after this long.
LOCK_TIMEOUT: LiteralString = "SET LOCAL lock_timeout = '30s'"
DEFAULT_REDIRECT_PATH = "/oauth/qbo/callback"


class InvalidGrant(Exception):
    """Intuit refused the grant (``invalid_grant``): re-consent is required."""

    def __init__(self, description: str | None) -> None:
        super().__init__(description or "invalid_grant")
        self.description = description


def load_fernet(settings: Settings) -> Fernet:
    """The key that encrypts tokens at rest: ``token_key``, else data_dir/token.key.

    The file is created (mode 0600) the first time, so a demo needs no setup;
    losing it means every connection must be re-authorised.
    """
    if settings.token_key:
        return Fernet(settings.token_key.encode("ascii"))
    path = Path(settings.data_dir) / "token.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        with path.open("xb") as handle:
            path.chmod(0o600)
            handle.write(key)
    return Fernet(path.read_bytes().strip())


class QboOAuth:
    """Intuit's authorize, token and revoke endpoints, through Authlib.

    Client credentials go in HTTP Basic (``client_secret_basic``), as Intuit
    requires. Token lifetimes are made absolute with the injected clock.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        token_url: str,
        revoke_url: str,
        redirect_uri: str,
        scope: str,
        clock: Clock,
        timeout: float = 10.0,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._authorize_url = authorize_url
        self._token_url = token_url
        self._revoke_url = revoke_url
        self._redirect_uri = redirect_uri
        self._scope = scope
        self._clock = clock
        self._timeout = timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock, *, redirect_uri: str | None = None
    ) -> QboOAuth:
        return cls(
            client_id=settings.qbo_client_id,
            client_secret=settings.qbo_client_secret,
            authorize_url=settings.qbo_authorize_url,
            token_url=settings.qbo_token_url,
            revoke_url=settings.qbo_revoke_url,
            redirect_uri=redirect_uri
            or settings.public_url.rstrip("/") + DEFAULT_REDIRECT_PATH,
            scope=settings.qbo_scope,
            clock=clock,
            timeout=settings.http_timeout_seconds,
        )

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            # Names of auth methods, not secrets.
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            revocation_endpoint_auth_method="client_secret_basic",
            scope=self._scope,
            redirect_uri=self._redirect_uri,
            timeout=self._timeout,
        )

    def authorization_url(self, state: str) -> str:
        """Where to send the user to connect a company; ``state`` is checked later."""
        # Only a URL to build: no HTTP client needed (and none left unclosed).
        return str(
            prepare_grant_uri(
                self._authorize_url,
                client_id=self._client_id,
                response_type="code",
                redirect_uri=self._redirect_uri,
                scope=self._scope,
                state=state,
            )
        )

    async def exchange_code(self, code: str) -> TokenSet:
        """Trade the callback's ``code`` for the first token pair."""
        return await self._token_call(
            "exchange_code",
            lambda client: client.fetch_token(
                self._token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=self._redirect_uri,
            ),
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Spend ``refresh_token`` for a new pair; Intuit may rotate it.

        Raises ``InvalidGrant`` when the refresh token is expired, revoked or
        superseded; other failures raise ``QboTransientError``/``QboAuthError``.
        """
        return await self._token_call(
            "refresh_token",
            lambda client: client.refresh_token(
                self._token_url, refresh_token=refresh_token
            ),
        )

    async def revoke(self, token: str) -> None:
        """Revoke a refresh (or access) token at Intuit."""
        async with self._client() as client:
            try:
                response = await client.revoke_token(
                    self._revoke_url,
                    token=token,
                    token_type_hint="refresh_token",  # noqa: S106
                )
            except httpx.RequestError as exc:
                raise _transient("revoke", f"{type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _transient("revoke", f"revocation answered {response.status_code}")

    async def _token_call(self, action: str, call: Any) -> TokenSet:
        requested_at = self._clock.now()
        async with self._client() as client:
            try:
                token = await call(client)
            except OAuthError as exc:
                if exc.error == "invalid_grant":
                    raise InvalidGrant(exc.description) from exc
                # invalid_client and friends: our configuration is wrong, which
                # no retry fixes, but jobs should wait rather than dead-letter.
                raise errors.QboAuthError(
                    f"QBO {action}: {exc.error}", action=action, code=exc.error
                ) from exc
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == 429:
                    raise QboThrottled(
                        f"QBO {action}: throttled",
                        seconds=60.0,
                        action=action,
                        status_code=status,
                    ) from exc
                raise _transient(action, f"token endpoint answered {status}") from exc
            except httpx.RequestError as exc:
                raise _transient(action, type(exc).__name__) from exc
            except ValueError as exc:
                raise _transient(action, "unreadable token response") from exc
        return _token_set(token, requested_at)


def _transient(action: str, why: str) -> errors.QboTransientError:
    return errors.QboTransientError(f"QBO {action}: {why}", action=action)


def _token_set(token: dict[str, Any], requested_at: dt.datetime) -> TokenSet:
    # Lifetimes count from when we asked, never from when we stored the answer.
    refresh_in = token.get("x_refresh_token_expires_in")
    return TokenSet(
        access_token=str(token["access_token"]),
        refresh_token=str(token["refresh_token"]),
        access_expires_at=requested_at
        + dt.timedelta(seconds=int(token.get("expires_in", 3600))),
        refresh_expires_at=None
        if refresh_in is None
        else requested_at + dt.timedelta(seconds=int(refresh_in)),
    )


select_connection: LiteralString = """
SELECT id, realm_id, status, access_token_enc, refresh_token_enc,
       access_expires_at, refresh_expires_at, token_generation
FROM connections WHERE id = %(id)s
"""

# NO KEY UPDATE, not UPDATE: a sync job's transaction that has inserted a row
# referencing this connection (a claimed link) holds FOR KEY SHARE on it while
# it calls QBO. FOR UPDATE would wait for that very transaction, so a refresh
# started by the job blocked on itself until lock_timeout and never reached
# Intuit. NO KEY UPDATE still serialises refreshers against each other.
lock_connection: LiteralString = select_connection + " FOR NO KEY UPDATE"

store_tokens: LiteralString = """
UPDATE connections
SET access_token_enc = %(access_token_enc)s,
    refresh_token_enc = %(refresh_token_enc)s,
    access_expires_at = %(access_expires_at)s,
    refresh_expires_at = %(refresh_expires_at)s,
    token_generation = token_generation + 1,
    status = 'connected',
    last_error = NULL,
    updated_at = %(now)s
WHERE id = %(id)s
RETURNING token_generation
"""

upsert_connection: LiteralString = """
INSERT INTO connections (realm_id, name, status, access_token_enc,
    refresh_token_enc, access_expires_at, refresh_expires_at, token_generation,
    updated_at)
VALUES (%(realm_id)s, %(name)s, 'connected', %(access_token_enc)s,
    %(refresh_token_enc)s, %(access_expires_at)s, %(refresh_expires_at)s, 1,
    %(now)s)
ON CONFLICT (realm_id) DO UPDATE
SET name = CASE WHEN EXCLUDED.name = '' THEN connections.name ELSE EXCLUDED.name END,
    status = 'connected',
    access_token_enc = EXCLUDED.access_token_enc,
    refresh_token_enc = EXCLUDED.refresh_token_enc,
    access_expires_at = EXCLUDED.access_expires_at,
    refresh_expires_at = EXCLUDED.refresh_expires_at,
    token_generation = connections.token_generation + 1,
    last_error = NULL,
    updated_at = EXCLUDED.updated_at
RETURNING id
"""

mark_disconnected: LiteralString = """
UPDATE connections
SET status = 'disconnected', last_error = %(last_error)s, updated_at = %(now)s
WHERE id = %(id)s
"""

clear_tokens: LiteralString = """
UPDATE connections
SET status = 'disconnected', access_token_enc = NULL, refresh_token_enc = NULL,
    access_expires_at = NULL, refresh_expires_at = NULL,
    token_generation = token_generation + 1,
    last_error = %(last_error)s, updated_at = %(now)s
WHERE id = %(id)s
"""


class TokenManager:
    """Access tokens per connection, refreshed at most once at a time.

    Tokens are Fernet-encrypted in ``connections``. Intuit rotates refresh
    tokens and an old one may stop working as soon as a new one is issued, so
    two workers refreshing at once could leave the connection with a burnt
    token. A refresh therefore runs inside one transaction holding the
    connection row ``FOR UPDATE``: the second worker waits for the lock, sees
    that ``token_generation`` moved, and reuses the new access token.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        oauth: QboOAuth,
        fernet: Fernet,
        clock: Clock,
        *,
        refresh_margin_seconds: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        self._pool = pool
        self._oauth = oauth
        self._fernet = fernet
        self._clock = clock
        self._margin = dt.timedelta(seconds=refresh_margin_seconds)

    async def connect(self, realm_id: str, tokens: TokenSet, *, name: str = "") -> int:
        """Store a freshly authorised company's tokens; return the connection id."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                upsert_connection,
                {
                    "realm_id": realm_id,
                    "name": name,
                    **self._encrypted(tokens),
                    "now": self._clock.now(),
                },
            )
            row = await cur.fetchone()
        assert row is not None  # noqa: S101 - RETURNING always yields a row
        connection_id = int(row["id"])
        logger.info(
            "qbo connection %s connected",
            connection_id,
            extra={"action": "connected", "realm_id": realm_id, "intuit_tid": None},
        )
        return connection_id

    async def connect_with_code(
        self, realm_id: str, code: str, *, name: str = ""
    ) -> int:
        """Finish the OAuth callback: exchange ``code`` and store the tokens."""
        return await self.connect(
            realm_id, await self._oauth.exchange_code(code), name=name
        )

    async def realm_id(self, connection_id: int) -> str:
        """The QBO company id of a connection."""
        return str((await self._read(connection_id))["realm_id"])

    async def get_access_token(self, connection_id: int) -> str:
        """A valid access token, refreshing first when it is near expiry.

        Raises ``ConnectionWaiting`` when the connection needs re-consent.
        """
        row = await self._read(connection_id)
        self._require_connected(row)
        if self._fresh(row):
            return self._decrypt(row["access_token_enc"])
        return await self._refresh(connection_id)

    async def refresh_after_rejection(self, connection_id: int, rejected: str) -> str:
        """A new access token after QBO answered 401 to ``rejected``."""
        return await self._refresh(connection_id, rejected=rejected)

    async def revoke(self, connection_id: int) -> None:
        """Revoke the connection's refresh token at Intuit and forget the tokens."""
        row = await self._read(connection_id)
        if row["refresh_token_enc"]:
            await self._oauth.revoke(self._decrypt(row["refresh_token_enc"]))
        async with self._pool.connection() as conn:
            await conn.execute(
                clear_tokens,
                {
                    "id": connection_id,
                    "last_error": "revoked",
                    "now": self._clock.now(),
                },
            )
        logger.info(
            "qbo connection %s revoked",
            connection_id,
            extra={
                "action": "revoked",
                "realm_id": row["realm_id"],
                "intuit_tid": None,
            },
        )

    def token_source(self, connection_id: int) -> ConnectionTokenSource:
        """A ``TokenSource`` for ``QboClient`` bound to one connection."""
        return ConnectionTokenSource(self, connection_id)

    async def _refresh(self, connection_id: int, *, rejected: str | None = None) -> str:
        try:
            return await self._refresh_locked(connection_id, rejected=rejected)
        except psycopg.errors.LockNotAvailable as exc:
            # Another worker has held the row past lock_timeout: its token
            # call is hanging. Try again later rather than pile up behind it.
            raise errors.QboTransientError(
                f"QBO connection {connection_id}: token refresh busy elsewhere",
                connection_id=connection_id,
            ) from exc

    async def _refresh_locked(self, connection_id: int, *, rejected: str | None) -> str:
        failure: InvalidGrant | None = None
        async with self._pool.connection() as conn, conn.transaction():
            # Critical section: whoever holds this row lock is the only
            # process spending the connection's refresh token.
            await conn.execute(LOCK_TIMEOUT)
            cur = await conn.execute(lock_connection, {"id": connection_id})
            row = await cur.fetchone()
            if row is None:
                raise _missing(connection_id)
            self._require_connected(row)

            # Another worker may have refreshed (bumping token_generation)
            # while we waited for the lock: its token is fresh and is not
            # the one QBO just rejected, so use it and spend nothing.
            if self._fresh(row):
                current = self._decrypt(row["access_token_enc"])
                if current != rejected:
                    return current

            try:
                tokens = await self._oauth.refresh(
                    self._decrypt(row["refresh_token_enc"])
                )
            except InvalidGrant as exc:
                # Commit the disconnect; the raise happens after the block.
                failure = exc
                await conn.execute(
                    mark_disconnected,
                    {
                        "id": connection_id,
                        "last_error": f"invalid_grant: {exc.description or ''}",
                        "now": self._clock.now(),
                    },
                )
            else:
                # Persist the rotated refresh token before anyone can use
                # the new access token: commit happens as the block ends.
                await conn.execute(
                    store_tokens,
                    {
                        "id": connection_id,
                        **self._encrypted(tokens),
                        "now": self._clock.now(),
                    },
                )

        extra = {"realm_id": row["realm_id"], "intuit_tid": None}
        if failure is not None:
            logger.warning(
                "qbo connection %s disconnected: invalid_grant",
                connection_id,
                extra={"action": "disconnected", **extra},
            )
            raise errors.ConnectionWaiting(
                f"QBO connection {connection_id} needs re-authorisation",
                connection_id=connection_id,
                realm_id=row["realm_id"],
            ) from failure
        logger.info(
            "qbo connection %s refreshed its tokens",
            connection_id,
            extra={"action": "token_refreshed", **extra},
        )
        return tokens.access_token

    async def _read(self, connection_id: int) -> dict[str, Any]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(select_connection, {"id": connection_id})
            row = await cur.fetchone()
        if row is None:
            raise _missing(connection_id)
        return dict(row)

    def _fresh(self, row: Any) -> bool:
        expires_at = row["access_expires_at"]
        return (
            row["access_token_enc"] is not None
            and expires_at is not None
            and expires_at - self._margin > self._clock.now()
        )

    def _require_connected(self, row: Any) -> None:
        if row["status"] != "connected" or not row["refresh_token_enc"]:
            raise errors.ConnectionWaiting(
                f"QBO connection {row['id']} is disconnected",
                connection_id=row["id"],
                realm_id=row["realm_id"],
            )

    def _encrypted(self, tokens: TokenSet) -> dict[str, Any]:
        return {
            "access_token_enc": self._fernet.encrypt(
                tokens.access_token.encode()
            ).decode(),
            "refresh_token_enc": self._fernet.encrypt(
                tokens.refresh_token.encode()
            ).decode(),
            "access_expires_at": tokens.access_expires_at,
            "refresh_expires_at": tokens.refresh_expires_at,
        }

    def _decrypt(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken as exc:
            # A changed token key: only re-consent can recover.
            raise errors.ConnectionWaiting(
                "stored QBO tokens cannot be decrypted with the current key"
            ) from exc


def _missing(connection_id: int) -> errors.PermanentError:
    return errors.PermanentError(
        f"QBO connection {connection_id} does not exist", connection_id=connection_id
    )


class ConnectionTokenSource:
    """``TokenSource`` for one connection, backed by a ``TokenManager``."""

    def __init__(self, manager: TokenManager, connection_id: int) -> None:
        self._manager = manager
        self._connection_id = connection_id

    async def access_token(self) -> str:
        return await self._manager.get_access_token(self._connection_id)

    async def refresh_access_token(self, rejected: str) -> str:
        return await self._manager.refresh_after_rejection(
            self._connection_id, rejected
        )
