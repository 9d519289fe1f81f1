"""The simulator's whole state and the services around it, shared by all routes."""

from __future__ import annotations

import logging
import random
import re
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import clock, state
from .company import Change, Company
from .config import SimConfig
from .throttle import Throttle
from .webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

AUTH_CODE_TTL_SECONDS = 300
# Tokens minted through /_sim/tokens without a client id belong to this app:
# a person or tool working in the company, not the app under test.
CONSOLE_CLIENT_ID = "sim-console"
TOKEN_ALPHABET = string.ascii_letters + string.digits
REALM_SETTINGS = ("duplicate_docnum_check", "webhook_format", "throttle_as_xml")


@dataclass
class FaultRule:
    """One injected failure, matched against API calls in order of creation."""

    id: int
    kind: str  # status | timeout_after_commit | timeout_before_commit | throttle
    method: str | None = None
    path_regex: str | None = None
    operation: str | None = None
    status: int = 500
    times: int = 1  # 0 or less: every matching call
    hold_seconds: float = 5.0
    xml: bool = False

    def matches(self, method: str, path: str, operation: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.operation and self.operation != operation:
            return False
        return not (self.path_regex and not re.search(self.path_regex, path))

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path_regex": self.path_regex,
            "operation": self.operation,
            "status": self.status,
            "times": self.times,
            "hold_seconds": Decimal(str(self.hold_seconds)),
            "xml": self.xml,
        }


class TokenError(Exception):
    """An OAuth failure: ``error`` is the RFC 6749 code, ``status`` the HTTP one."""

    def __init__(self, error: str, status: int = 400, description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.description = description


class Simulator:
    """Everything one simulated QBO holds: companies, tokens, faults, logs."""

    def __init__(
        self, config: SimConfig, sim_clock: clock.SimClock | None = None
    ) -> None:
        self.config = config
        self.clock = sim_clock or clock.SimClock(config.clock_start)
        self.rng: random.Random = (
            random.Random(config.seed)  # noqa: S311 - reproducible ids, not secrets
            if config.seed is not None
            else random.SystemRandom()
        )
        self.state_file = (
            state.StateFile(config.state_path) if config.state_path else None
        )
        self.dispatcher = WebhookDispatcher(
            config, self.clock, self.realm_format, self.rng
        )
        self.throttle = Throttle(config)
        self.realms: dict[str, state.Realm] = {}
        self.oauth = state.OAuthState()
        self.fault_rules: list[FaultRule] = []
        self.requests: list[dict[str, Any]] = []
        self._seq = 0
        self._fault_ids = 0
        if not self._load():
            self._fresh()
            self.persist()

    # -- state ----------------------------------------------------------------

    def _fresh(self) -> None:
        self.realms = {}
        self.oauth = state.OAuthState()
        self.add_realm(
            state.DEFAULT_REALM_NAME, sample=True, realm_id=state.DEFAULT_REALM_ID
        )

    def _load(self) -> bool:
        if self.state_file is None:
            return False
        data = self.state_file.load()
        if data is None:
            return False
        self.realms = {
            realm_id: state.Realm.from_dict(realm)
            for realm_id, realm in data["realms"].items()
        }
        self.oauth = state.OAuthState.from_dict(data.get("oauth", {}))
        for realm_id, realm in self.realms.items():
            if realm.settings.get("index_lag_seconds"):
                self.company(realm_id).snapshot_index()
        if not self.clock.frozen:
            self.clock.set_offset(float(data.get("clock_offset_seconds", 0)))
        return True

    def persist(self) -> None:
        if self.state_file is None:
            return
        self.state_file.save(
            {
                "realms": {key: realm.to_dict() for key, realm in self.realms.items()},
                "oauth": self.oauth.to_dict(),
                "clock_offset_seconds": str(self.clock.offset_seconds),
            }
        )

    async def reset(self) -> None:
        await self.dispatcher.reset()
        self.throttle.reset()
        self.fault_rules.clear()
        self.requests.clear()
        self._seq = 0
        self.clock.set_offset(0)
        if self.config.seed is not None:
            self.rng.seed(self.config.seed)
        self._fresh()
        self.persist()

    def add_realm(
        self, name: str | None, *, sample: bool, realm_id: str | None = None
    ) -> state.Realm:
        while realm_id is None or realm_id in self.realms:
            realm_id = state.new_realm_id(self.rng)
        stamp = clock.company_time(self.clock.now())
        realm = state.Realm(
            realm_id=realm_id,
            name=name or f"Sandbox Company_US_{len(self.realms) + 1}",
            settings={
                "duplicate_docnum_check": self.config.duplicate_docnum_check,
                "custom_txn_numbers": self.config.custom_txn_numbers,
                "webhook_format": self.config.webhook_format,
                "throttle_as_xml": False,
            },
            created=stamp,
        )
        state.seed_realm(realm, stamp, sample=sample)
        self.realms[realm_id] = realm
        return realm

    def realm_format(self, realm_id: str) -> str:
        realm = self.realms.get(realm_id)
        if realm is None:
            return self.config.webhook_format
        return str(realm.settings.get("webhook_format", self.config.webhook_format))

    def company(
        self, realm_id: str, hidden: set[tuple[str, str]] | None = None
    ) -> Company:
        return Company(self.realms[realm_id], self.clock, self.on_change, hidden=hidden)

    def on_change(self, change: Change) -> None:
        # QBO only notifies about companies with a live OAuth connection.
        if self.connected(change.realm_id):
            self.dispatcher.record(change)

    def connected(self, realm_id: str) -> bool:
        return any(
            grant.get("realm_id") == realm_id and not grant.get("revoked", True)
            for grant in self.oauth.grants.values()
        )

    # -- request log ----------------------------------------------------------

    def log_request(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        entry["seq"] = self._seq
        self.requests.append(entry)

    def add_fault(self, rule: dict[str, Any]) -> FaultRule:
        self._fault_ids += 1
        fault = FaultRule(id=self._fault_ids, **rule)
        self.fault_rules.append(fault)
        return fault

    def take_fault(self, method: str, path: str, operation: str) -> FaultRule | None:
        for rule in self.fault_rules:
            if rule.matches(method, path, operation):
                if rule.times > 0:
                    rule.times -= 1
                    if rule.times == 0:
                        self.fault_rules.remove(rule)
                return rule
        return None

    # -- OAuth ----------------------------------------------------------------

    def _token(self, prefix: str, length: int) -> str:
        return prefix + "".join(self.rng.choice(TOKEN_ALPHABET) for _ in range(length))

    def issue_tokens(
        self,
        realm_id: str,
        grant_id: str | None = None,
        *,
        client_id: str = CONSOLE_CLIENT_ID,
    ) -> dict[str, Any]:
        """Mint an access/refresh pair under a grant (a new one by default).

        A grant belongs to one app (``client_id``); QBO's per-second budget
        and concurrency limit are per realm *and app*.
        """
        now = self.clock.timestamp()
        if grant_id is None:
            grant_id = self._token("grant-", 16)
            self.oauth.grants[grant_id] = {
                "realm_id": realm_id,
                "revoked": False,
                "client_id": client_id,
            }
        access = self._token("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..", 64)
        refresh = self._token("AB11", 46)
        self.oauth.access[access] = {
            "grant": grant_id,
            "realm_id": realm_id,
            "expires_at": str(now + self.config.access_token_ttl_seconds),
        }
        self.oauth.refresh[refresh] = {
            "grant": grant_id,
            "realm_id": realm_id,
            "expires_at": str(now + self.config.refresh_token_ttl_seconds),
            "superseded_at": None,
        }
        return {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": self.config.access_token_ttl_seconds,
            "refresh_token": refresh,
            "x_refresh_token_expires_in": self.config.refresh_token_ttl_seconds,
        }

    def check_access(self, token: str | None) -> tuple[str | None, str]:
        """Return (realm_id, "") for a live token, else (None, reason)."""
        if not token:
            return None, "Authorization header missing or not a Bearer token"
        record = self.oauth.access.get(token)
        if record is None:
            return None, "Token invalid: " + token[:8]
        grant = self.oauth.grants.get(record["grant"], {})
        if grant.get("revoked", True):
            return None, "Token revoked: " + token[:8]
        if self.clock.timestamp() >= float(record["expires_at"]):
            return None, "Token expired: " + token[:8]
        return str(record["realm_id"]), ""

    def app_of(self, token: str | None) -> str:
        """The app (client id) a live access token was issued to."""
        record = self.oauth.access.get(token or "") or {}
        grant = self.oauth.grants.get(record.get("grant", ""), {})
        return str(grant.get("client_id", CONSOLE_CLIENT_ID))

    def refresh_tokens(self, refresh_token: str) -> dict[str, Any]:
        record = self.oauth.refresh.get(refresh_token)
        now = self.clock.timestamp()
        if record is None:
            raise TokenError(
                "invalid_grant", description="Incorrect Token type or clientID"
            )
        grant = self.oauth.grants.get(record["grant"], {})
        if grant.get("revoked", True):
            raise TokenError("invalid_grant", description="Token revoked")
        if now >= float(record["expires_at"]):
            raise TokenError("invalid_grant", description="Token expired")
        superseded = record.get("superseded_at")
        # Each refresh rotates the token; the previous one survives only for
        # the configured grace, the way concurrent refreshers get burned.
        if superseded is not None and now >= float(superseded) + float(
            self.config.refresh_token_grace_seconds
        ):
            raise TokenError("invalid_grant", description="Token has been rotated")
        if superseded is None:
            record["superseded_at"] = str(now)
        return self.issue_tokens(str(record["realm_id"]), str(record["grant"]))

    def create_code(self, realm_id: str, client_id: str, redirect_uri: str) -> str:
        code = self._token("AB11", 36)
        self.oauth.codes[code] = {
            "realm_id": realm_id,
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "expires_at": str(self.clock.timestamp() + AUTH_CODE_TTL_SECONDS),
            "used": False,
        }
        return code

    def exchange_code(self, code: str, redirect_uri: str | None) -> dict[str, Any]:
        record = self.oauth.codes.get(code)
        if record is None or record["used"]:
            raise TokenError("invalid_grant", description="Invalid authorization code")
        if self.clock.timestamp() >= float(record["expires_at"]):
            raise TokenError("invalid_grant", description="Authorization code expired")
        if redirect_uri != record["redirect_uri"]:
            raise TokenError("invalid_grant", description="redirect_uri mismatch")
        record["used"] = True
        return self.issue_tokens(
            str(record["realm_id"]), client_id=str(record["client_id"])
        )

    def revoke(self, token: str) -> None:
        """Revoking either token of a connection ends the whole connection."""
        record = self.oauth.refresh.get(token) or self.oauth.access.get(token)
        if record is not None:
            self.oauth.grants.setdefault(record["grant"], {})["revoked"] = True
