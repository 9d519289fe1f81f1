"""The simulator's records, versions, idempotency keys and optional JSON file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from ledgerbridge.simulators.internal import clock as clock_module
from ledgerbridge.simulators.internal import problems

COLLECTIONS = ("invoices", "customers", "items")
ID_PREFIXES = {"invoices": "inv", "customers": "cus", "items": "itm"}
LIST_FILTERS = {
    "invoices": ("number", "customer_id", "status"),
    "customers": ("name", "email"),
    "items": ("sku", "name"),
}
STATE_FORMAT = 1
ID_HEX_DIGITS = 6

Record = dict[str, Any]


class StoredResponse:
    """The first answer to an idempotent create, replayed byte-for-byte later."""

    __slots__ = ("body", "fingerprint", "status")

    def __init__(self, *, fingerprint: str, status: int, body: Record) -> None:
        self.fingerprint = fingerprint
        self.status = status
        self.body = body


def fingerprint_body(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Store:
    """All records in memory, written through to ``state_path`` after each change.

    The server runs on one event loop and no method awaits, so every change is
    atomic with respect to other requests without a lock.
    """

    def __init__(
        self,
        *,
        clock: clock_module.SimClock,
        seed: int | None,
        state_path: Path | None,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.state_path = state_path
        self.reset()
        if state_path is not None and state_path.exists():
            self._load(state_path)

    def reset(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - ids, not secrets
        self.records: dict[str, dict[str, Record]] = {c: {} for c in COLLECTIONS}
        # A global change sequence orders listings: a record changed while a
        # client pages moves behind the cursor instead of being skipped.
        self.change_seq: dict[str, dict[str, int]] = {c: {} for c in COLLECTIONS}
        self.next_seq = 1
        self.idempotency: dict[str, StoredResponse] = {}

    # Reads

    def get(self, collection: str, record_id: str) -> Record:
        record = self.records[collection].get(record_id)
        if record is None:
            raise problems.ApiError(
                404, "not_found", f"{collection} {record_id!r} does not exist"
            )
        if record.get("status") == "deleted":
            raise problems.ApiError(
                410, "gone", f"{collection} {record_id!r} was deleted"
            )
        return record

    def list(
        self,
        collection: str,
        *,
        updated_since: dt.datetime | None,
        after_seq: int,
        limit: int,
        filters: dict[str, str],
    ) -> tuple[list[Record], int | None]:
        """One page ordered by change sequence, and the sequence to resume after.

        Deleted records appear only in ``updated_since`` listings, so a
        reconciler sees deletes while lookups by number never find them.
        """
        seqs = self.change_seq[collection]
        matches: list[tuple[int, Record]] = []
        for record_id, record in self.records[collection].items():
            seq = seqs[record_id]
            if seq <= after_seq:
                continue
            if updated_since is None and record.get("status") == "deleted":
                continue
            if updated_since is not None and (
                dt.datetime.fromisoformat(record["updated_at"]) < updated_since
            ):
                continue
            if any(record.get(k) != v for k, v in filters.items()):
                continue
            matches.append((seq, record))
        matches.sort(key=lambda pair: pair[0])

        page = matches[:limit]
        next_seq = page[-1][0] if len(matches) > limit else None
        return [record for _, record in page], next_seq

    # Writes

    def new_id(self, collection: str) -> str:
        existing = self.records[collection]
        while True:
            candidate = (
                f"{ID_PREFIXES[collection]}_"
                f"{self.rng.getrandbits(4 * ID_HEX_DIGITS):0{ID_HEX_DIGITS}x}"
            )
            if candidate not in existing:
                return candidate

    def check_references(self, fields: Record) -> None:
        """Unknown customers or items are a 422: the body names what is missing."""
        found = problems.Problems()
        customer_id = fields.get("customer_id")
        if customer_id is not None and not self._is_live("customers", customer_id):
            found.add("customer_id", f"unknown customer {customer_id!r}")
        for index, line in enumerate(fields.get("lines") or []):
            if not self._is_live("items", line["item_id"]):
                found.add(
                    f"lines[{index}].item_id", f"unknown item {line['item_id']!r}"
                )
        found.raise_if_any(code="unknown_reference")

    def check_number_free(self, number: str, *, except_id: str | None = None) -> None:
        for record_id, record in self.records["invoices"].items():
            if (
                record["number"] == number
                and record["status"] != "deleted"
                and record_id != except_id
            ):
                raise problems.ApiError(
                    409,
                    "duplicate_number",
                    f"invoice number {number!r} is already used by {record_id}",
                )

    def insert(self, collection: str, fields: Record) -> Record:
        record_id = self.new_id(collection)
        record: Record = {"id": record_id, **fields}
        if collection == "invoices":
            record["status"] = "open"
        record["version"] = 1
        self._touch(collection, record)
        self.records[collection][record_id] = record
        return record

    def update(self, collection: str, record: Record, changes: Record) -> bool:
        """Apply changed fields; return whether anything changed (no-op: no bump)."""
        changed = {k: v for k, v in changes.items() if record.get(k) != v}
        if not changed:
            return False
        record.update(changed)
        record["version"] += 1
        self._touch(collection, record)
        return True

    def remember_response(self, scope: str, key: str, response: StoredResponse) -> None:
        self.idempotency[f"{scope}:{key}"] = response

    def recall_response(self, scope: str, key: str) -> StoredResponse | None:
        return self.idempotency.get(f"{scope}:{key}")

    def _is_live(self, collection: str, record_id: str) -> bool:
        record = self.records[collection].get(record_id)
        return record is not None and record.get("status") != "deleted"

    def _touch(self, collection: str, record: Record) -> None:
        record["updated_at"] = clock_module.format_timestamp(self.clock.now())
        self.change_seq[collection][record["id"]] = self.next_seq
        self.next_seq += 1

    # Persistence

    def save(self) -> None:
        """Write the whole state atomically: a crash leaves the old or new file."""
        if self.state_path is None:
            return
        version, internal, gauss = self.rng.getstate()
        state = {
            "format": STATE_FORMAT,
            "records": self.records,
            "change_seq": self.change_seq,
            "next_seq": self.next_seq,
            "idempotency": {
                key: {"fingerprint": r.fingerprint, "status": r.status, "body": r.body}
                for key, r in self.idempotency.items()
            },
            "rng": [version, list(internal), gauss],
        }
        directory = self.state_path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, self.state_path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} has unknown state format {state.get('format')!r}")
        self.records = {c: state["records"].get(c, {}) for c in COLLECTIONS}
        self.change_seq = {c: state["change_seq"].get(c, {}) for c in COLLECTIONS}
        self.next_seq = state["next_seq"]
        self.idempotency = {
            key: StoredResponse(
                fingerprint=r["fingerprint"], status=r["status"], body=r["body"]
            )
            for key, r in state["idempotency"].items()
        }
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
