"""Intuit-style OAuth 2.0: consent page, token and revoke endpoints, discovery."""

from __future__ import annotations

import base64
import binascii
import hmac
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from . import wire
from .api import new_tid
from .sim import Simulator, TokenError

TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
CONNECT_PATH = "/connect"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/oauth2/v1/keys"
SCOPES = (
    "com.intuit.quickbooks.accounting",
    "com.intuit.quickbooks.payment",
    "openid",
    "profile",
    "email",
    "phone",
    "address",
)


def _form(raw: bytes) -> dict[str, str]:
    return dict(
        parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    )


def _oauth_error(error: str, status: int, description: str = "") -> Response:
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    headers = {"cache-control": "no-store"}
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="Intuit"'
    return Response(
        wire.dumps(body), status, media_type="application/json", headers=headers
    )


def _client_ok(sim: Simulator, header: str | None) -> bool:
    """Intuit authenticates the app with HTTP Basic only."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    client_id, _, secret = decoded.partition(":")
    id_ok = hmac.compare_digest(client_id.encode(), sim.config.client_id.encode())
    secret_ok = hmac.compare_digest(secret.encode(), sim.config.client_secret.encode())
    return id_ok and secret_ok


def _consent_page(
    sim: Simulator, params: dict[str, str], error: str = ""
) -> HTMLResponse:
    options = "".join(
        f'<option value="{escape(realm.realm_id)}">{escape(realm.name)} '
        f"({escape(realm.realm_id)})</option>"
        for realm in sim.realms.values()
    )
    hidden = "".join(
        f'<input type="hidden" name="{escape(key)}" value="{escape(params.get(key, ""))}">'
        for key in ("client_id", "redirect_uri", "state", "scope", "response_type")
    )
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>Connect to QuickBooks (simulator)</title></head><body>"
        "<h1>Connect your app to QuickBooks</h1>"
        f"{message}<form method='post' action='{CONNECT_PATH}'>{hidden}"
        f"<label>Company <select name='realm_id'>{options}</select></label> "
        "<button type='submit' name='decision' value='connect'>Connect</button> "
        "<button type='submit' name='decision' value='cancel'>Cancel</button>"
        "</form></body></html>"
    )
    return HTMLResponse(html, status_code=400 if error else 200)


def build_router(sim: Simulator) -> APIRouter:
    router = APIRouter()

    @router.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        form = _form(await request.body())
        entry: dict[str, Any] = {
            "method": "POST",
            "path": TOKEN_PATH,
            "query": request.url.query,
            "status": None,
            "requestid": None,
            "realm_id": None,
            "operation": "token",
        }
        response = _token_response(sim, request, form, entry)
        response.headers["intuit_tid"] = new_tid(sim)
        entry["status"] = response.status_code
        sim.log_request(entry)
        return response

    @router.post(REVOKE_PATH)
    async def revoke(request: Request) -> Response:
        raw = await request.body()
        entry: dict[str, Any] = {
            "method": "POST",
            "path": REVOKE_PATH,
            "query": request.url.query,
            "status": None,
            "requestid": None,
            "realm_id": None,
            "operation": "revoke",
        }
        if not _client_ok(sim, request.headers.get("authorization")):
            response = _oauth_error("invalid_client", 401)
        else:
            content_type = request.headers.get("content-type", "")
            token_value: Any = None
            if "json" in content_type:
                try:
                    body = wire.loads(raw)
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    token_value = body.get("token")
            else:
                token_value = _form(raw).get("token")
            if not isinstance(token_value, str) or not token_value:
                response = _oauth_error("invalid_request", 400, "token is required")
            else:
                sim.revoke(token_value)
                sim.persist()
                response = Response(status_code=200)
        response.headers["intuit_tid"] = new_tid(sim)
        entry["status"] = response.status_code
        sim.log_request(entry)
        return response

    @router.get(USERINFO_PATH)
    async def userinfo(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        realm_id, why = sim.check_access(token)
        if realm_id is None:
            return _oauth_error("invalid_token", 401, why)
        body = {
            "sub": f"sim-user-{realm_id}",
            "email": "owner@example.com",
            "emailVerified": True,
            "givenName": "Sandbox",
            "familyName": "Owner",
        }
        return Response(wire.dumps(body), media_type="application/json")

    @router.get(JWKS_PATH)
    async def jwks() -> Response:
        return Response(wire.dumps({"keys": []}), media_type="application/json")

    @router.get(CONNECT_PATH)
    @router.get("/connect/oauth2")
    async def connect(request: Request) -> Response:
        params = dict(request.query_params)
        problem = _check_authorize(sim, params)
        return _consent_page(sim, params, problem)

    @router.post(CONNECT_PATH)
    async def connect_submit(request: Request) -> Response:
        form = _form(await request.body())
        problem = _check_authorize(sim, form)
        if problem:
            return _consent_page(sim, form, problem)
        query: dict[str, str] = {}
        if form.get("decision") == "cancel":
            query["error"] = "access_denied"
        else:
            realm_id = form.get("realm_id", "")
            if realm_id not in sim.realms:
                return _consent_page(sim, form, "Choose a company")
            query["code"] = sim.create_code(
                realm_id, form["client_id"], form["redirect_uri"]
            )
            query["realmId"] = realm_id
            sim.persist()
        if form.get("state"):
            query["state"] = form["state"]
        target = form["redirect_uri"]
        separator = "&" if urlsplit(target).query else "?"
        return RedirectResponse(target + separator + urlencode(query), status_code=302)

    async def discovery(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        body = {
            "issuer": base,
            # Intuit's consent page lives at /connect/oauth2; the form on it
            # posts back to /connect.
            "authorization_endpoint": base + CONNECT_PATH + "/oauth2",
            "token_endpoint": base + TOKEN_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "userinfo_endpoint": base + USERINFO_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            # TODO(sim-openid): no id_token is issued and the key set is empty,
            # so clients that verify an ID token cannot run against the sim.
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES),
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
        return Response(wire.dumps(body), media_type="application/json")

    for path in (
        "/.well-known/openid_sandbox_configuration",
        "/.well-known/openid_sandbox_configuration/",
        "/.well-known/openid_configuration",
        "/.well-known/openid_configuration/",
    ):
        router.add_api_route(path, discovery, methods=["GET"])

    return router


def _check_authorize(sim: Simulator, params: dict[str, str]) -> str:
    if params.get("client_id") != sim.config.client_id:
        return "Unknown client_id"
    if params.get("response_type") != "code":
        return "response_type must be code"
    redirect = urlsplit(params.get("redirect_uri", ""))
    if redirect.scheme not in {"http", "https"} or not redirect.netloc:
        return "redirect_uri must be an absolute http(s) URL"
    scopes = set(params.get("scope", "").split())
    if not scopes or not scopes <= set(SCOPES):
        return "scope is missing or invalid"
    return ""


def _token_response(
    sim: Simulator, request: Request, form: dict[str, str], entry: dict[str, Any]
) -> Response:
    if not _client_ok(sim, request.headers.get("authorization")):
        return _oauth_error("invalid_client", 401)
    grant_type = form.get("grant_type")
    try:
        if grant_type == "authorization_code":
            tokens = sim.exchange_code(form.get("code", ""), form.get("redirect_uri"))
        elif grant_type == "refresh_token":
            tokens = sim.refresh_tokens(form.get("refresh_token", ""))
        else:
            return _oauth_error("unsupported_grant_type", 400)
    except TokenError as exc:
        return _oauth_error(exc.error, exc.status, exc.description)
    realm = sim.oauth.access[tokens["access_token"]]["realm_id"]
    entry["realm_id"] = realm
    sim.persist()
    return Response(
        wire.dumps(tokens),
        media_type="application/json",
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )
