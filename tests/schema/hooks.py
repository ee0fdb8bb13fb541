"""schemathesis hooks for martelo's API schema test (`tests/tests/schemathesis.rs`).

Loaded with `SCHEMATHESIS_HOOKS=hooks` (this directory on `PYTHONPATH`). The Rust test starts
a real cluster and gateway, creates the accounts and a few auctions, and passes them here:

- `MARTELO_URL`: the gateway, `http://127.0.0.1:PORT`;
- `MARTELO_SCHEMA_ACCOUNTS`: JSON `{"admin"|"seller"|"bidder"|"leaver"|"victim":
  {"username", "password", "id"}}`;
- `MARTELO_SCHEMA_AUCTIONS`: comma-separated ids of auctions that exist (open, with bids).

What the hooks do:

- sign each route in as the account whose role it needs (admin routes as the admin, auction
  changes as the seller, bids and the caller's own pages as the bidder). Sign-out gets a
  fresh session of the `leaver` account every time, so it never revokes a token the other
  routes use;
- keep the run's own accounts out of the admin routes' reach: a generated user id that names
  one of them (suspend it, revoke its role) is swapped for the `victim` account's id;
- point small generated auction ids (0 to n - 1) at the fixture auctions, so the changes and
  reads also meet auctions that exist, not only `auction_not_found`;
- the `problem_json_errors` check: every 4xx and 5xx answer is `application/problem+json`
  with the RFC 9457 members and a stable `code` (docs/API.md).
"""

from __future__ import annotations

import json
import os
import threading
import time

import requests
import schemathesis

BASE = os.environ.get("MARTELO_URL", "http://127.0.0.1:8080")
ACCOUNTS = json.loads(os.environ.get("MARTELO_SCHEMA_ACCOUNTS", "{}"))
AUCTIONS = [int(x) for x in os.environ.get("MARTELO_SCHEMA_AUCTIONS", "").split(",") if x]
# Access tokens live 15 minutes; sign in again well before that on a long run.
TOKEN_REFRESH_SECS = 600.0


def _sign_in(account: str) -> str:
    credentials = ACCOUNTS[account]
    answer = requests.post(
        f"{BASE}/v1/sessions",
        json={"username": credentials["username"], "password": credentials["password"]},
        timeout=30,
    )
    if answer.status_code != 201:
        raise RuntimeError(f"sign-in of {account!r} failed: {answer.status_code} {answer.text}")
    return answer.json()["access_token"]


class _Tokens:
    """One access token per account, signed in again every `TOKEN_REFRESH_SECS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, str]] = {}

    def get(self, account: str) -> str:
        with self._lock:
            cached = self._tokens.get(account)
            if cached is not None and time.monotonic() - cached[0] < TOKEN_REFRESH_SECS:
                return cached[1]
            token = _sign_in(account)
            self._tokens[account] = (time.monotonic(), token)
            return token


TOKENS = _Tokens()

ADMIN_PREFIXES = ("/v1/users", "/v1/audit")
SELLER_ROUTES = {
    ("POST", "/v1/auctions"),
    ("PUT", "/v1/auctions/{id}"),
    ("POST", "/v1/auctions/{id}/cancel"),
}


def account_for(method: str, path: str) -> str:
    """The account a route is called as."""
    method = method.upper()
    if (method, path) == ("DELETE", "/v1/sessions/current"):
        return "leaver"
    if path.startswith(ADMIN_PREFIXES) or path.endswith(("/void", "/remove")):
        return "admin"
    if (method, path) in SELLER_ROUTES:
        return "seller"
    return "bidder"


@schemathesis.auth(refresh_interval=None)
class MarteloAuth:
    """A Bearer token of the account `account_for` names (only on routes with security)."""

    def get(self, case, context):
        operation = context.operation
        if not operation.definition.raw.get("security"):
            return None
        account = account_for(operation.method, operation.path)
        if account == "leaver":
            # Sign-out revokes the session: a new one every time.
            return _sign_in("leaver")
        return TOKENS.get(account)

    def set(self, case, data, context):
        case.headers = dict(case.headers or {})
        case.headers["Authorization"] = f"Bearer {data}"


def _own_ids() -> set[int]:
    return {int(account["id"]) for name, account in ACCOUNTS.items() if name != "victim"}


@schemathesis.hook
def before_call(context, case, kwargs):
    parameters = case.path_parameters
    if not parameters:
        return
    path = case.operation.path
    if path.startswith("/v1/users/"):
        user = parameters.get("id")
        if isinstance(user, int) and user in _own_ids() and "victim" in ACCOUNTS:
            parameters["id"] = int(ACCOUNTS["victim"]["id"])
    elif path.startswith("/v1/auctions/{id}"):
        auction = parameters.get("id")
        if isinstance(auction, int) and 0 <= auction < len(AUCTIONS):
            parameters["id"] = AUCTIONS[auction]


PROBLEM_MEMBERS = {"type": str, "title": str, "status": int, "detail": str, "code": str}


@schemathesis.check
def problem_json_errors(ctx, response, case):
    """Every 4xx/5xx is RFC 9457 `application/problem+json` with martelo's `code`."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "application/problem+json":
        raise AssertionError(
            f"{response.status_code} answered with Content-Type {content_type!r}, "
            "not application/problem+json"
        )
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"the problem body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"the problem body is not a JSON object: {body!r}")
    for member, kind in PROBLEM_MEMBERS.items():
        if not isinstance(body.get(member), kind):
            raise AssertionError(f"the problem has no {kind.__name__} {member!r}: {body!r}")
    if body["status"] != response.status_code:
        raise AssertionError(
            f"the problem says status {body['status']}, the response is {response.status_code}"
        )
    if not body["code"] or body["type"] != f"urn:martelo:problem:{body['code']}":
        raise AssertionError(f"the problem's type does not name its code: {body!r}")
    return None
