"""``ledgerbridge chaos``: a seeded storm of real-world events, then invariants.

The whole stack runs on loopback (``tools.stack``). A ``random.Random(seed)``
picks every step: people creating and editing invoices on either side, the
same field edited on both sides at once, voids in QBO, deletes in the
internal system, payments in QBO, and delivery faults through the
simulators' control APIs (webhooks held then released repeated or reversed,
webhooks dropped, QBO creates that time out after committing, 500s, 429s).
Nothing sleeps: retries waiting for their backoff are made due at once.

Alongside, a model keeps the last value a person gave each field. At the end
every fault is lifted, every held webhook released, retries and the
reconciler run until the system is quiet, and the report checks:

- every linked pair agrees in canonical form, except pairs held in conflict;
- every held conflict lists its fields with both values;
- no DocNumber exists twice in QBO (nor an open number twice internally);
- every invoice a person created has its counterpart;
- no edit a person made is missing (the last value of each field is on both
  sides, or on its own side while the pair is held for a person);
- same-field edits on both sides became conflicts;
- no sync job ended as a dead letter.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import json
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx

from ledgerbridge.db.queries import QUERIES
from ledgerbridge.reconciler import reconciler
from ledgerbridge.settings import Settings
from ledgerbridge.sync import mapping, model, sides
from ledgerbridge.tools.stack import Stack, open_stack

# A person retries a call the system answered with a 5xx or 429 (an injected
# fault meant for LedgerBridge can hit the person too).
# Several armed faults can stack up, so a person is patient.
PERSON_ATTEMPTS = 12
# LedgerBridge gives up on QBO after this long; a timeout_after_commit fault
# holds the answer longer, so the create lands and the job still fails.
CHAOS_HTTP_TIMEOUT_SECONDS = 1.0
TIMEOUT_HOLD_SECONDS = 2.0
# The final phase repeats retry -> settle -> reconcile until quiet.
FINAL_ROUNDS = 6
# The simulator's sample company: "Amy's Bird Sanctuary" and friends, "Services".
QBO_SAMPLE_CUSTOMERS = ("1", "2", "3")
QBO_SAMPLE_ITEM = "1"
QBO_SAMPLE_PRICE = Decimal("150.00")
ITEM_PRICES = (Decimal("150.00"), Decimal("95.50"), Decimal("60.00"))
EDITABLE = ("memo", "due_date", "quantity", "description")
# The canonical field a tracked field belongs to (a conflict is per canonical field).
CANONICAL_FIELD = {
    "memo": "memo",
    "due_date": "due_date",
    "quantity": "lines",
    "description": "lines",
}
BASE_DATE = dt.date(2027, 1, 1)


@dataclasses.dataclass
class Tracked:
    """One invoice as the people around it know it."""

    number: str
    origin: str
    internal_id: str | None = None
    qbo_id: str | None = None
    status: str = "open"
    # field -> the value a person last gave it; (step, side) of that edit.
    expected: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_edit: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    # Canonical fields edited on both sides at once (each must become a conflict).
    clashes: set[str] = dataclasses.field(default_factory=set)
    paid: Decimal = Decimal(0)


@dataclasses.dataclass
class Check:
    name: str
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclasses.dataclass
class Report:
    seed: int
    invoices: int
    steps: int
    log: list[str] = dataclasses.field(default_factory=list)
    counts: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    checks: list[Check] = dataclasses.field(default_factory=list)
    conflicts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dead_letters: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    totals: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def render(self, *, sequence: bool | None = None) -> str:
        """The report as text; the step sequence is included when a check failed."""
        out = [
            f"chaos seed={self.seed} invoices={self.invoices} steps={self.steps}",
            "",
            "actions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
            "system: " + ", ".join(f"{k} {v}" for k, v in self.totals.items()),
            "",
            "invariants:",
        ]
        for check in self.checks:
            out.append(f"  [{'PASS' if check.ok else 'FAIL'}] {check.name}")
            out.extend(f"         - {failure}" for failure in check.failures)
        out.append("")
        if self.conflicts:
            out.append(f"held conflicts ({len(self.conflicts)}):")
            for conflict in self.conflicts:
                for field in conflict["fields"]:
                    out.append(
                        f"  {conflict['natural_key']:<12} {field['field']:<9}"
                        f" internal={_short(field.get('internal'))}"
                        f"  qbo={_short(field.get('qbo'))}"
                    )
        else:
            out.append("held conflicts: none")
        if self.dead_letters:
            out.append(f"dead letters ({len(self.dead_letters)}):")
            out.extend(
                f"  {d['side']}:{d['entity_type']}:{d['entity_id']} {d['detail']}"
                for d in self.dead_letters
            )
        if sequence if sequence is not None else not self.ok:
            out += ["", "sequence:", *(f"  {line}" for line in self.log)]
        out += ["", "RESULT: " + ("PASS" if self.ok else "FAIL")]
        return "\n".join(out)


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        # Lines, as a person reads them: quantity x price "description".
        value = [
            f"{v.get('quantity')} x {v.get('unit_price')} {v.get('description')!r}"
            for v in value
        ]
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _dumps(body: Any) -> bytes:
    return json.dumps(body, default=str).encode()


def _decimal_json(resp: httpx.Response) -> Any:
    # Money stays Decimal from the wire on, as in the connectors.
    return json.loads(resp.text, parse_float=Decimal)


class Chaos:
    """One seeded run against one stack."""

    def __init__(self, stack: Stack, *, seed: int, invoices: int, steps: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible sequence
        self.report = Report(seed=seed, invoices=invoices, steps=steps)
        self.target = invoices
        self.steps = steps
        self.step = 0
        self.tracked: dict[str, Tracked] = {}
        self.customers: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self.held = {"internal": False, "qbo": False}
        self.created = 0

    # -- the run ---------------------------------------------------------------

    async def run(self) -> Report:
        await self._setup()
        for step in range(1, self.steps + 1):
            self.step = step
            await self._one_step()
        await self._calm_down()
        await self._check()
        return self.report

    def _note(self, kind: str, text: str) -> None:
        self.report.counts[kind] += 1
        self.report.log.append(f"{self.step:>4} {kind:<16} {text}")

    async def _setup(self) -> None:
        for n in range(3):
            resp = await self.stack.internal.post(
                "/api/customers",
                json={"name": f"Chaos Customer {n}", "email": f"c{n}@chaos.example"},
                headers={"Idempotency-Key": f"chaos-customer-{n}"},
            )
            resp.raise_for_status()
            self.customers.append(resp.json())
            resp = await self.stack.internal.post(
                "/api/items",
                json={
                    "sku": f"CH-{n}",
                    "name": f"Chaos item {n}",
                    "unit_price": str(ITEM_PRICES[n]),
                },
                headers={"Idempotency-Key": f"chaos-item-{n}"},
            )
            resp.raise_for_status()
            self.items.append(resp.json())
        await self.stack.settle()

    async def _one_step(self) -> None:
        remaining = self.target - self.created
        steps_left = self.steps - self.step + 1
        # Spread the creates over the first two thirds of the run, so most
        # invoices also live through edits and faults.
        if remaining and (
            self.rng.random() < max(remaining / max(steps_left * 0.66, 1), 0.12)
        ):
            if self.rng.random() < 0.5:
                await self._create_internal()
            else:
                await self._create_qbo()
            return
        actions: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (14, self._edit_internal),
            (14, self._edit_qbo),
            (7, self._edit_both),
            (2, self._void_qbo),
            (2, self._delete_internal),
            (4, self._payment_qbo),
            (6, self._hold),
            (6, self._release),
            (3, self._drop),
            (3, self._timeout_create),
            (4, self._server_error),
            (12, self._settle),
            (3, self._reconcile),
            (4, self._retry),
        ]
        weights = [w for w, _ in actions]
        (action,) = self.rng.choices([a for _, a in actions], weights=weights)
        await action()

    # -- people ------------------------------------------------------------------

    async def _person(
        self, call: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        """A person's call, retried when the system answers 5xx or 429."""
        resp = await call()
        for _ in range(PERSON_ATTEMPTS - 1):
            if resp.status_code < 500 and resp.status_code != 429:
                break
            resp = await call()
        return resp

    def _new(self, origin: str) -> Tracked:
        self.created += 1
        prefix = "CH-I" if origin == "internal" else "CH-Q"
        tracked = Tracked(number=f"{prefix}-{1000 + self.created}", origin=origin)
        self.tracked[tracked.number] = tracked
        return tracked

    def _set(self, tracked: Tracked, side: str, values: dict[str, Any]) -> None:
        for field, value in values.items():
            tracked.expected[field] = value
            tracked.last_edit[field] = (self.step, side)

    async def _create_internal(self, *, note: str = "create_internal") -> None:
        tracked = self._new("internal")
        n = self.rng.randrange(len(self.items))
        item = self.items[n]
        quantity = Decimal(self.rng.randint(1, 5))
        due = BASE_DATE + dt.timedelta(days=self.rng.randint(0, 60))
        body = {
            "number": tracked.number,
            "customer_id": self.rng.choice(self.customers)["id"],
            "currency": "USD",
            "issue_date": "2026-12-01",
            "due_date": due.isoformat(),
            "lines": [
                {
                    "item_id": item["id"],
                    "description": f"{item['name']}, December",
                    "quantity": str(quantity),
                    "unit_price": item["unit_price"],
                }
            ],
            "memo": "Thank you for your business",
            "status": "open",
        }
        resp = await self._person(
            lambda: self.stack.internal.post(
                "/api/invoices",
                content=_dumps(body),
                headers={
                    "Idempotency-Key": f"chaos-invoice-{tracked.number}",
                    "Content-Type": "application/json",
                },
            )
        )
        resp.raise_for_status()
        tracked.internal_id = str(resp.json()["id"])
        self._set(
            tracked,
            "internal",
            {
                "memo": body["memo"],
                "due_date": due,
                "quantity": quantity,
                "description": f"{item['name']}, December",
            },
        )
        self._note(note, f"{tracked.number} ({tracked.internal_id})")

    async def _create_qbo(self) -> None:
        tracked = self._new("qbo")
        quantity = Decimal(self.rng.randint(1, 5))
        due = BASE_DATE + dt.timedelta(days=self.rng.randint(0, 60))
        body = {
            "DocNumber": tracked.number,
            "CustomerRef": {"value": self.rng.choice(QBO_SAMPLE_CUSTOMERS)},
            "TxnDate": "2026-12-05",
            "DueDate": due.isoformat(),
            "CustomerMemo": {"value": "Made in QBO"},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": mapping.line_amount(quantity, QBO_SAMPLE_PRICE),
                    "Description": "Bird baths",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": QBO_SAMPLE_ITEM},
                        "Qty": quantity,
                        "UnitPrice": QBO_SAMPLE_PRICE,
                    },
                }
            ],
        }
        # requestid: a person's retry after a 5xx must not make a second invoice.
        resp = await self._person(
            lambda: self.stack.qbo.post(
                f"/v3/company/{self.stack.realm_id}/invoice",
                params={"requestid": f"chaos-{tracked.number}"},
                content=_dumps(body),
                headers={"Content-Type": "application/json"},
            )
        )
        resp.raise_for_status()
        tracked.qbo_id = str(resp.json()["Invoice"]["Id"])
        self._set(
            tracked,
            "qbo",
            {
                "memo": "Made in QBO",
                "due_date": due,
                "quantity": quantity,
                "description": "Bird baths",
            },
        )
        self._note("create_qbo", f"{tracked.number} ({tracked.qbo_id})")

    def _pick(self, *, need: tuple[str, ...]) -> Tracked | None:
        choices = [
            t
            for t in self.tracked.values()
            if t.status == "open" and all(getattr(t, f"{s}_id") for s in need)
        ]
        return self.rng.choice(choices) if choices else None

    async def _resolve_ids(self) -> None:
        """Learn each invoice's id on the other side, as a person would look it up."""
        for tracked in self.tracked.values():
            if tracked.qbo_id is None:
                resp = await self._person(
                    functools.partial(
                        self.stack.qbo.get,
                        f"/v3/company/{self.stack.realm_id}/query",
                        params={
                            "query": "select * from Invoice"
                            f" where DocNumber = '{tracked.number}'"
                        },
                    )
                )
                if resp.status_code == 200:
                    found = resp.json()["QueryResponse"].get("Invoice", [])
                    if found:
                        tracked.qbo_id = str(found[0]["Id"])
            if tracked.internal_id is None:
                resp = await self._person(
                    functools.partial(
                        self.stack.internal.get,
                        "/api/invoices",
                        params={"number": tracked.number},
                    )
                )
                if resp.status_code == 200:
                    data = [i for i in resp.json()["data"] if i["status"] != "deleted"]
                    if data:
                        tracked.internal_id = str(data[0]["id"])

    def _value(self, field: str, side: str, tracked: Tracked) -> Any:
        """A fresh value for ``field``, never one a person gave before."""
        tag = f"s{self.step}{side[0]}"
        if field == "memo":
            return f"memo {tag}"
        if field == "description":
            return f"work {tag}"
        if field == "due_date":
            offset = self.step * 2 + (1 if side == "qbo" else 0)
            return BASE_DATE + dt.timedelta(days=90 + offset)
        # quantity: whole on the internal side, halves in QBO, so the two
        # sides of a clash never pick the same number.
        whole = Decimal(self.rng.randint(1, 9))
        return whole if side == "internal" else whole + Decimal("0.5")

    async def _edit_internal(self, field: str | None = None) -> None:
        await self._resolve_ids()
        tracked = self._pick(need=("internal",))
        if tracked is None:
            return
        field = field or self.rng.choice(EDITABLE)
        value = self._value(field, "internal", tracked)
        if await self._patch_internal(tracked, field, value):
            self._set(tracked, "internal", {field: value})
            self._note("edit_internal", f"{tracked.number} {field}={_short(value)}")

    async def _patch_internal(self, tracked: Tracked, field: str, value: Any) -> bool:
        path = f"/api/invoices/{tracked.internal_id}"
        for _ in range(PERSON_ATTEMPTS):
            resp = await self._person(lambda: self.stack.internal.get(path))
            if resp.status_code == 410:
                return False
            resp.raise_for_status()
            current = _decimal_json(resp)
            if current["status"] != "open":
                return False
            patch: dict[str, Any]
            if field in ("memo", "due_date"):
                patch = {field: value}
            else:
                lines = [
                    {
                        "item_id": line["item_id"],
                        "description": line["description"],
                        "quantity": line["quantity"],
                        "unit_price": line["unit_price"],
                    }
                    for line in current["lines"]
                ]
                lines[0][field] = value
                patch = {"lines": lines}
            resp = await self._person(
                functools.partial(
                    self.stack.internal.patch,
                    path,
                    content=_dumps(patch),
                    headers={
                        "If-Match": str(current["version"]),
                        "Content-Type": "application/json",
                    },
                )
            )
            if resp.status_code == 412:
                continue  # LedgerBridge wrote meanwhile; read again
            resp.raise_for_status()
            return True
        return False

    async def _edit_qbo(self, field: str | None = None) -> None:
        await self._resolve_ids()
        tracked = self._pick(need=("qbo",))
        if tracked is None:
            return
        field = field or self.rng.choice(EDITABLE)
        value = self._value(field, "qbo", tracked)
        if await self._update_qbo(tracked, field, value):
            self._set(tracked, "qbo", {field: value})
            self._note("edit_qbo", f"{tracked.number} {field}={_short(value)}")

    async def _qbo_get(self, qbo_id: str) -> dict[str, Any] | None:
        resp = await self._person(
            lambda: self.stack.qbo.get(
                f"/v3/company/{self.stack.realm_id}/invoice/{qbo_id}"
            )
        )
        if resp.status_code == 400 and "610" in resp.text:
            return None
        resp.raise_for_status()
        found: dict[str, Any] = _decimal_json(resp)["Invoice"]
        return found

    async def _update_qbo(self, tracked: Tracked, field: str, value: Any) -> bool:
        assert tracked.qbo_id is not None  # noqa: S101 - _pick saw to it
        for _ in range(PERSON_ATTEMPTS):
            current = await self._qbo_get(tracked.qbo_id)
            if current is None or mapping.is_qbo_void(current):
                return False
            body: dict[str, Any] = {
                "Id": current["Id"],
                "SyncToken": current["SyncToken"],
                "sparse": True,
            }
            if field == "memo":
                body["CustomerMemo"] = {"value": value}
            elif field == "due_date":
                body["DueDate"] = value.isoformat()
            else:
                lines = [
                    dict(line)
                    for line in current.get("Line", [])
                    if line.get("DetailType") == "SalesItemLineDetail"
                ]
                first = dict(lines[0])
                detail = dict(first["SalesItemLineDetail"])
                if field == "quantity":
                    detail["Qty"] = value
                    first["Amount"] = mapping.line_amount(
                        value, Decimal(str(detail["UnitPrice"]))
                    )
                else:
                    first["Description"] = value
                first["SalesItemLineDetail"] = detail
                lines[0] = first
                body["Line"] = lines
            resp = await self._person(
                functools.partial(
                    self.stack.qbo.post,
                    f"/v3/company/{self.stack.realm_id}/invoice",
                    content=_dumps(body),
                    headers={"Content-Type": "application/json"},
                )
            )
            if resp.status_code == 400 and "5010" in resp.text:
                continue  # stale SyncToken: LedgerBridge wrote meanwhile
            if resp.status_code == 400 and "6000" in resp.text:
                return False  # e.g. a quantity below what was already paid
            resp.raise_for_status()
            return True
        return False

    async def _edit_both(self) -> None:
        """The same field edited on both sides before either is synced."""
        await self._resolve_ids()
        tracked = self._pick(need=("internal", "qbo"))
        if tracked is None:
            return
        field = self.rng.choice(EDITABLE)
        mine = self._value(field, "internal", tracked)
        theirs = self._value(field, "qbo", tracked)
        if not await self._patch_internal(tracked, field, mine):
            return
        self._set(tracked, "internal", {field: mine})
        if not await self._update_qbo(tracked, field, theirs):
            self._note("edit_internal", f"{tracked.number} {field}={_short(mine)}")
            return
        self._set(tracked, "qbo", {field: theirs})
        tracked.clashes.add(CANONICAL_FIELD[field])
        self._note(
            "edit_both",
            f"{tracked.number} {field} internal={_short(mine)} qbo={_short(theirs)}",
        )

    async def _void_qbo(self) -> None:
        await self._resolve_ids()
        tracked = self._pick(need=("qbo",))
        if tracked is None:
            return
        assert tracked.qbo_id is not None  # noqa: S101 - _pick saw to it
        current = await self._qbo_get(tracked.qbo_id)
        if current is None:
            return
        resp = await self._person(
            lambda: self.stack.qbo.post(
                f"/v3/company/{self.stack.realm_id}/invoice",
                params={"operation": "void"},
                json={"Id": current["Id"], "SyncToken": current["SyncToken"]},
            )
        )
        if resp.status_code == 400:
            return  # stale token: someone wrote first; a person tries later
        resp.raise_for_status()
        tracked.status = "void"
        self._note("void_qbo", tracked.number)

    async def _delete_internal(self) -> None:
        await self._resolve_ids()
        tracked = self._pick(need=("internal",))
        if tracked is None:
            return
        resp = await self._person(
            lambda: self.stack.internal.delete(f"/api/invoices/{tracked.internal_id}")
        )
        if resp.status_code in (409, 410, 412):
            return
        resp.raise_for_status()
        tracked.status = "deleted"
        self._note("delete_internal", tracked.number)

    async def _payment_qbo(self) -> None:
        await self._resolve_ids()
        tracked = self._pick(need=("qbo",))
        if tracked is None:
            return
        amount = Decimal(self.rng.randint(1, 20)).quantize(Decimal("0.01"))
        resp = await self._person(
            lambda: self.stack.qbo_control.post(
                f"/_sim/realms/{self.stack.realm_id}/payments",
                content=_dumps({"invoice_id": tracked.qbo_id, "amount": amount}),
                headers={"Content-Type": "application/json"},
            )
        )
        if resp.status_code >= 400:
            return  # more than the open balance, or voided meanwhile
        tracked.paid += amount
        self._note("payment_qbo", f"{tracked.number} {amount}")

    # -- delivery faults -----------------------------------------------------------

    def _control(self, side: str) -> httpx.AsyncClient:
        return self.stack.qbo_control if side == "qbo" else self.stack.internal_control

    async def _cut(self, side: str) -> None:
        # QBO batches changes in a window; close it so they become deliveries.
        if side == "qbo":
            await self.stack.qbo_control.post("/_sim/webhooks/flush", json={})

    async def _hold(self) -> None:
        side = self.rng.choice(("internal", "qbo"))
        if self.held[side]:
            return
        resp = await self._control(side).post(
            "/_sim/webhooks/config", json={"hold": True}
        )
        resp.raise_for_status()
        self.held[side] = True
        self._note("hold", side)

    async def _release(self, side: str | None = None) -> None:
        side = side or self.rng.choice(("internal", "qbo"))
        if not self.held[side]:
            return
        await self._cut(side)
        repeat = self.rng.choice((1, 1, 2, 3))
        reverse = self.rng.random() < 0.5
        resp = await self._control(side).post(
            "/_sim/webhooks/release", json={"repeat": repeat, "reverse": reverse}
        )
        resp.raise_for_status()
        sent = resp.json()
        resp = await self._control(side).post(
            "/_sim/webhooks/config", json={"hold": False}
        )
        resp.raise_for_status()
        self.held[side] = False
        self._note(
            "release",
            f"{side} {len(sent)} sends (repeat={repeat}, reverse={reverse})",
        )

    async def _drop(self) -> None:
        held = [side for side, on in self.held.items() if on]
        if not held:
            return
        side = self.rng.choice(held)
        await self._cut(side)
        resp = await self._control(side).post("/_sim/webhooks/drop", json={})
        resp.raise_for_status()
        dropped = resp.json()["dropped"]
        if dropped:
            self._note("drop", f"{side} {len(dropped)} webhooks")

    async def _timeout_create(self) -> None:
        """A QBO create that lands but whose answer never reaches LedgerBridge."""
        if self.held["internal"] or self.created >= self.target:
            return
        await self.stack.arm_qbo_create_timeout(TIMEOUT_HOLD_SECONDS)
        await self._create_internal(note="create_timeout")
        # The job meets the fault now; its retry (later) must adopt the invoice.
        await self.stack.settle()

    async def _server_error(self) -> None:
        side = self.rng.choice(("internal", "qbo"))
        times = self.rng.randint(1, 3)
        if side == "qbo":
            kind = self.rng.choice(("status", "status", "throttle"))
            spec: dict[str, Any] = {"kind": kind, "status": 500, "times": times}
        else:
            kind = "status"
            spec = {"kind": kind, "status": 500, "times": times}
        resp = await self._control(side).post("/_sim/faults", json=spec)
        resp.raise_for_status()
        label = "429" if kind == "throttle" else "500"
        self._note("fault", f"{side} next {times} calls answer {label}")

    # -- the system's own work -----------------------------------------------------

    async def _settle(self) -> None:
        await self.stack.settle()
        self._note("settle", "webhooks delivered, queue drained")

    async def _reconcile(self) -> None:
        found = await reconciler.reconcile_all(self.stack.services)
        await self.stack.settle()
        self._note("reconcile", f"{found} drifted records enqueued")

    async def _retry(self) -> None:
        due = await self.stack.retries_due_now()
        await self.stack.settle()
        self._note("retry", f"{due} backed-off jobs run now")

    async def _calm_down(self) -> None:
        """Lift every fault, release every held webhook, run until quiet."""
        self.step = self.steps + 1
        for side in ("internal", "qbo"):
            resp = await self._control(side).delete("/_sim/faults")
            resp.raise_for_status()
            await self._release(side)
        for _ in range(FINAL_ROUNDS):
            due = await self.stack.retries_due_now()
            await self.stack.settle()
            found = await reconciler.reconcile_all(self.stack.services)
            await self.stack.settle()
            if not due and not found:
                break
        self._note("final", "faults lifted, retries and reconciler run until quiet")

    # -- invariants ------------------------------------------------------------------

    async def _rows(
        self, statement: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        async with self.stack.services.pool.connection() as conn:
            cur = await conn.execute(statement, params or {})
            return list(await cur.fetchall())

    async def _internal_get(self, invoice_id: str) -> dict[str, Any] | None:
        resp = await self.stack.internal.get(f"/api/invoices/{invoice_id}")
        if resp.status_code == 410:
            return None
        resp.raise_for_status()
        found: dict[str, Any] = _decimal_json(resp)
        return found

    async def _check(self) -> None:
        await self._resolve_ids()
        stack = self.stack
        async with stack.services.pool.connection() as conn:
            cur = await conn.execute(
                QUERIES["reference_links"], {"connection_id": stack.connection_id}
            )
            refs = sides.RefMaps.from_rows(await cur.fetchall())
        links = await self._rows(
            "SELECT * FROM links WHERE entity_type = 'invoice' ORDER BY id"
        )
        conflicts = await self._rows(
            "SELECT c.*, l.natural_key FROM conflicts c JOIN links l ON l.id = c.link_id"
            " WHERE c.status = 'open' ORDER BY c.id"
        )
        self.report.conflicts = conflicts
        open_by_link: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        for conflict in conflicts:
            open_by_link[int(conflict["link_id"])].append(conflict)

        agree = Check("every linked invoice agrees on both sides (held pairs aside)")
        listed = Check("every held conflict lists its fields with both values")
        canon: dict[str, tuple[model.Invoice | None, model.Invoice | None, str]] = {}
        for link in links:
            key = str(link["natural_key"])
            if link["internal_id"] is None or link["qbo_id"] is None:
                agree.failures.append(f"{key}: link without both ids")
                continue
            internal = await self._internal_get(str(link["internal_id"]))
            qbo = await self._qbo_get(str(link["qbo_id"]))
            if link["state"] == "deleted":
                if internal is not None and internal["status"] == "open":
                    agree.failures.append(f"{key}: link deleted, internal still open")
                if qbo is not None and not mapping.is_qbo_void(qbo):
                    agree.failures.append(f"{key}: link deleted, QBO still open")
                continue
            left = self._canonical_internal(internal, key, agree)
            right = self._canonical_qbo(qbo, refs, key, agree)
            canon[key] = (left, right, str(link["state"]))
            if link["state"] == "held":
                found = open_by_link.get(int(link["id"]), [])
                if len(found) != 1:
                    listed.failures.append(
                        f"{key}: held with {len(found)} open conflicts"
                    )
                for conflict in found:
                    for field in conflict["fields"]:
                        if not {"base", "internal", "qbo"} <= set(field):
                            listed.failures.append(
                                f"{key}: field {field} lacks a value"
                            )
                continue
            if left is not None and right is not None and left != right:
                diff = [
                    f"{f}: internal={_short(getattr(left, f), 40)}"
                    f" qbo={_short(getattr(right, f), 40)}"
                    for f in model.INVOICE_FIELDS
                    if getattr(left, f) != getattr(right, f)
                ]
                agree.failures.append(f"{key}: " + "; ".join(diff))

        unique = Check(
            "no DocNumber exists twice in QBO (nor an open number internally)"
        )
        numbers = [
            str(i.get("DocNumber"))
            for i in await self._all_qbo_invoices()
            if i.get("DocNumber")
        ]
        for number, count in collections.Counter(numbers).items():
            if count > 1:
                unique.failures.append(f"{number} exists {count} times in QBO")
        internal_numbers = [
            str(i["number"]) for i in await self._all_internal_invoices()
        ]
        for number, count in collections.Counter(internal_numbers).items():
            if count > 1:
                unique.failures.append(
                    f"{number} exists {count} times in the internal system"
                )

        counterpart = Check("every invoice a person created has its counterpart")
        edits = Check("no edit a person made is missing")
        clashes = Check("same-field edits on both sides became conflicts")
        held_fields: dict[str, set[str]] = {
            str(c["natural_key"]): {str(f["field"]) for f in c["fields"]}
            for c in conflicts
        }
        for tracked in self.tracked.values():
            if tracked.status != "open":
                continue
            if tracked.number not in canon:
                counterpart.failures.append(
                    f"{tracked.number} (made in {tracked.origin}) has no live link"
                )
                continue
            left, right, state = canon[tracked.number]
            in_conflict = held_fields.get(tracked.number, set())
            for field in sorted(tracked.clashes - in_conflict):
                clashes.failures.append(
                    f"{tracked.number}: {field} edited on both sides, link {state},"
                    f" conflict fields {sorted(in_conflict)}"
                )
            for field, value in tracked.expected.items():
                step, side = tracked.last_edit[field]
                if state == "held":
                    # Nothing is written while a person decides: the edit must
                    # still be on its own side.
                    where = {"internal": left, "qbo": right}[side]
                    seen = {side: _field(where, field)}
                else:
                    seen = {
                        "internal": _field(left, field),
                        "qbo": _field(right, field),
                    }
                for where_side, got in seen.items():
                    if got != value:
                        edits.failures.append(
                            f"{tracked.number}: {field} last set to {_short(value)}"
                            f" in {side} at step {step}; {where_side} has"
                            f" {_short(got)} (link {state})"
                        )

        dead = Check("no sync job ended as a dead letter")
        self.report.dead_letters = await self._rows(
            "SELECT * FROM events WHERE status = 'dead_letter' ORDER BY id"
        )
        # One line per record and cause: each webhook for it is its own event.
        causes = collections.Counter(
            (f"{d['side']}:{d['entity_type']}:{d['entity_id']}", str(d["detail"]))
            for d in self.report.dead_letters
        )
        dead.failures.extend(
            f"{entity}: {detail}" + (f" ({n} events)" if n > 1 else "")
            for (entity, detail), n in causes.items()
        )
        self.report.checks = [agree, listed, unique, counterpart, edits, clashes, dead]
        totals = await self._rows(
            "SELECT (SELECT count(*) FROM events) AS events,"
            " (SELECT count(*) FROM deliveries) AS deliveries,"
            " (SELECT count(*) FROM links WHERE entity_type = 'invoice') AS links,"
            " (SELECT count(*) FROM conflicts WHERE status = 'open') AS conflicts"
        )
        self.report.totals = {k: int(v) for k, v in totals[0].items()}
        self.report.totals["qbo_requests"] = len(await stack.qbo_requests())
        self.report.totals["internal_requests"] = len(await stack.internal_requests())

    def _canonical_internal(
        self, raw: dict[str, Any] | None, key: str, check: Check
    ) -> model.Invoice | None:
        if raw is None:
            return None
        try:
            return mapping.invoice_from_internal(raw)
        except Exception as exc:  # a report names what it could not read
            check.failures.append(f"{key}: internal side unreadable: {exc}")
            return None

    def _canonical_qbo(
        self, raw: dict[str, Any] | None, refs: sides.RefMaps, key: str, check: Check
    ) -> model.Invoice | None:
        if raw is None:
            return None
        try:
            return mapping.invoice_from_qbo(
                raw, customer_keys=refs.customers_q2i, item_keys=refs.items_q2i
            )
        except Exception as exc:  # a report names what it could not read
            check.failures.append(f"{key}: QBO side unreadable: {exc}")
            return None

    async def _all_qbo_invoices(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start = 1
        while True:
            page = await self.stack.qbo_query(
                f"select * from Invoice startposition {start} maxresults 1000"
            )
            found.extend(page)
            if len(page) < 1000:
                return found
            start += len(page)

    async def _all_internal_invoices(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            resp = await self.stack.internal.get("/api/invoices", params=params)
            resp.raise_for_status()
            body = resp.json()
            found.extend(i for i in body["data"] if i["status"] == "open")
            cursor = body.get("next_cursor")
            if not cursor:
                return found


def _field(invoice: model.Invoice | None, field: str) -> Any:
    """A tracked field's value in a canonical invoice (None when absent)."""
    if invoice is None:
        return None
    if field == "memo":
        return invoice.memo
    if field == "due_date":
        return invoice.due_date
    if not invoice.lines:
        return None
    line = invoice.lines[0]
    return line.quantity if field == "quantity" else line.description


async def run_chaos(
    settings: Settings, *, seed: int, invoices: int = 30, steps: int = 200
) -> Report:
    """Run one seeded chaos sequence on a throwaway stack and return the report.

    The database is created for the run (``DATABASE_URL``'s server, or the
    embedded one) and dropped afterwards; the simulators live in threads.
    """
    async with open_stack(
        settings,
        prefix="lb_chaos",
        http_timeout_seconds=CHAOS_HTTP_TIMEOUT_SECONDS,
    ) as stack:
        return await Chaos(stack, seed=seed, invoices=invoices, steps=steps).run()


__all__ = ["Chaos", "Check", "Report", "Tracked", "run_chaos"]
