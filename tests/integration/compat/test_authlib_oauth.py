"""A standard OAuth 2.0 client (Authlib's sync session) against the simulator.

Only the discovery document tells Authlib where to go. The consent page is
driven the way a browser would: GET the authorize URL, POST its form, follow
the redirect to the app's callback and read ``code`` there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from fastapi import FastAPI, Request

from support.servers import serve_in_thread

REALM = "9341453050121670"
START = dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)
CLIENT_ID = "authlib-client-id"
CLIENT_SECRET = "authlib-client-secret"
SCOPE = "com.intuit.quickbooks.accounting openid"
GRACE_SECONDS = 120


class ConsentForm(HTMLParser):
    """The consent page's form: its action, inputs and the first option."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.select = ""
        self.options: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = attr.get("action", "")
        elif tag == "input" and attr.get("name"):
            self.fields[attr["name"]] = attr.get("value", "")
        elif tag == "select":
            self.select = attr.get("name", "")
        elif tag == "option":
            self.options.append(attr.get("value", ""))


@pytest.fixture
def callback_url() -> Iterator[str]:
    """The app's redirect URI: a loopback server that echoes the callback."""
    app = FastAPI()

    @app.get("/callback")
    async def callback(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    with serve_in_thread(app) as url:
        yield f"{url}/callback"


def discover(sim_url: str) -> dict[str, Any]:
    resp = httpx.get(f"{sim_url}/.well-known/openid_sandbox_configuration/")
    resp.raise_for_status()
    return dict(resp.json())


def session_for(discovery: dict[str, Any], redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        token_endpoint=discovery["token_endpoint"],
        # Intuit authenticates the app with HTTP Basic (a method name).
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
    )


def consent(authorize_url: str, callback_url: str) -> httpx.URL:
    """Choose the sample company on the consent page; return the callback URL."""
    with httpx.Client(follow_redirects=True) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = ConsentForm()
        form.feed(page.text)
        assert REALM in form.options
        answer = browser.post(
            page.url.join(form.action),
            data={**form.fields, form.select: REALM, "decision": "connect"},
        )
    assert answer.status_code == 200
    assert str(answer.url).startswith(callback_url)
    assert answer.json()["realmId"] == REALM
    return answer.url


def connect(
    sim_url: str, callback_url: str
) -> tuple[OAuth2Session, dict[str, Any], dict[str, Any]]:
    """The authorization-code flow, end to end; returns session, discovery, token."""
    discovery = discover(sim_url)
    session = session_for(discovery, callback_url)
    authorize_url, state = session.create_authorization_url(
        discovery["authorization_endpoint"]
    )
    landed = consent(authorize_url, callback_url)
    assert landed.params["state"] == state
    # Authlib checks the state and takes the code from the callback URL.
    token = session.fetch_token(
        discovery["token_endpoint"], authorization_response=str(landed), state=state
    )
    return session, discovery, dict(token)


def advance(sim_url: str, seconds: float) -> None:
    resp = httpx.post(f"{sim_url}/_sim/clock/advance", json={"seconds": seconds})
    resp.raise_for_status()


def api_get(sim_url: str, access_token: str) -> httpx.Response:
    return httpx.get(
        f"{sim_url}/v3/company/{REALM}/customer/1",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "json"},
    )


@pytest.fixture
def sim_url(start_sim: Callable[..., str]) -> str:
    return start_sim(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock_start=START
    )


def test_authlib_code_flow_then_refresh_rotates(
    sim_url: str, callback_url: str
) -> None:
    session, discovery, token = connect(sim_url, callback_url)

    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 3600
    assert token["x_refresh_token_expires_in"] == 8726400
    assert api_get(sim_url, token["access_token"]).status_code == 200

    first_refresh = token["refresh_token"]
    renewed = session.refresh_token(discovery["token_endpoint"])
    assert renewed["refresh_token"] != first_refresh
    assert renewed["access_token"] != token["access_token"]
    assert session.token["refresh_token"] == renewed["refresh_token"]
    assert api_get(sim_url, renewed["access_token"]).status_code == 200

    # The default grace is 0: the superseded refresh token is spent.
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(discovery["token_endpoint"], refresh_token=first_refresh)
    assert caught.value.error == "invalid_grant"

    # The newest one still works.
    newest = session.refresh_token(
        discovery["token_endpoint"], refresh_token=renewed["refresh_token"]
    )
    assert newest["refresh_token"] != renewed["refresh_token"]


def test_authlib_code_is_single_use(sim_url: str, callback_url: str) -> None:
    discovery = discover(sim_url)
    session = session_for(discovery, callback_url)
    authorize_url, state = session.create_authorization_url(
        discovery["authorization_endpoint"]
    )
    landed = str(consent(authorize_url, callback_url))
    session.fetch_token(
        discovery["token_endpoint"], authorization_response=landed, state=state
    )

    with pytest.raises(OAuthError) as caught:
        session.fetch_token(
            discovery["token_endpoint"], authorization_response=landed, state=state
        )
    assert caught.value.error == "invalid_grant"


def test_authlib_old_refresh_token_works_within_the_grace(
    start_sim: Callable[..., str], callback_url: str
) -> None:
    sim_url = start_sim(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        clock_start=START,
        refresh_token_grace_seconds=GRACE_SECONDS,
    )
    session, discovery, token = connect(sim_url, callback_url)
    old = token["refresh_token"]
    session.refresh_token(discovery["token_endpoint"])

    # A concurrent refresher still holding the old token is not burnt...
    advance(sim_url, GRACE_SECONDS - 1)
    again = session.refresh_token(discovery["token_endpoint"], refresh_token=old)
    assert again["refresh_token"] != old
    assert api_get(sim_url, again["access_token"]).status_code == 200

    # ...until the grace, counted from the first rotation, runs out.
    advance(sim_url, 1)
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(discovery["token_endpoint"], refresh_token=old)
    assert caught.value.error == "invalid_grant"


def test_authlib_revocation_ends_the_grant(sim_url: str, callback_url: str) -> None:
    session, discovery, token = connect(sim_url, callback_url)

    resp = session.revoke_token(
        discovery["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert resp.status_code == 200

    assert api_get(sim_url, token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(discovery["token_endpoint"])
    assert caught.value.error == "invalid_grant"


def test_authlib_wrong_secret_is_invalid_client(
    sim_url: str, callback_url: str
) -> None:
    discovery = discover(sim_url)
    session = OAuth2Session(
        client_id=CLIENT_ID,
        client_secret="wrong",
        token_endpoint_auth_method="client_secret_basic",
    )
    with pytest.raises(OAuthError) as caught:
        session.refresh_token(discovery["token_endpoint"], refresh_token="AB11nope")
    assert caught.value.error == "invalid_client"
