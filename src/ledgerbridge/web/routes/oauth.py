"""Connect to QuickBooks: the OAuth 2.0 authorization code flow."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse

from ledgerbridge.connectors.qbo import auth

router = APIRouter()

STATE_COOKIE = "lb_oauth_state"


@router.get("/connect/qbo")
async def connect_qbo(request: Request) -> RedirectResponse:
    """Send the person to Intuit's (or the simulator's) consent page."""
    services = request.app.state.services
    state = secrets.token_urlsafe(24)
    response = RedirectResponse(
        services.oauth.authorization_url(state), status_code=303
    )
    response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax", max_age=600)
    return response


@router.get(auth.DEFAULT_REDIRECT_PATH)
async def oauth_callback(
    request: Request,
    code: str = "",
    state: str = "",
    realmId: str = "",
) -> RedirectResponse:
    """Intuit redirects here with ``code``, ``state`` and ``realmId``."""
    expected = request.cookies.get(STATE_COOKIE)
    if not expected or not secrets.compare_digest(expected, state):
        raise HTTPException(
            400, "the OAuth state does not match; start again from Connect"
        )
    if not code or not realmId:
        raise HTTPException(400, "the callback lacks code or realmId")
    services = request.app.state.services
    await services.tokens.connect_with_code(
        realmId, code, name=f"QBO company {realmId}"
    )
    response = RedirectResponse("/?connected=" + realmId, status_code=303)
    response.delete_cookie(STATE_COOKIE)
    return response
