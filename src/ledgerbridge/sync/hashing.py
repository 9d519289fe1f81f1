"""Deterministic SHA-256 state hash of a canonical entity."""

from __future__ import annotations

import hashlib
import json

from ledgerbridge.sync import codec, model


def canonical_bytes(entity: model.Entity) -> bytes:
    """Serialise ``entity`` deterministically: kind tag, sorted keys, normalised decimals.

    Only canonical fields exist here, so QBO's computed values (TotalAmt,
    Balance, SyncToken, the SubTotal line, ...) cannot influence the result.
    The kind tag keeps a customer and an item with equal field text apart.
    """
    document = {
        "kind": codec.KIND_BY_TYPE[type(entity)],
        "state": codec.to_json(entity),
    }
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode("utf-8")


def state_hash(entity: model.Entity) -> str:
    """Return the SHA-256 hex digest of ``entity``'s canonical serialisation."""
    return hashlib.sha256(canonical_bytes(entity)).hexdigest()
