"""The command line, run as a person would, against a real database."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from ledgerbridge import cli
from support import factories


def _run(args, database_url, data_dir):
    env = {"DATABASE_URL": database_url, "LEDGERBRIDGE_DATA_DIR": str(data_dir)}
    return CliRunner().invoke(cli.app, args, env=env)


def test_cli_migrate_is_idempotent(db_url, tmp_path):
    result = _run(["migrate"], db_url, tmp_path)
    assert result.exit_code == 0, result.output
    assert "revision 0003" in result.output


def test_cli_refuses_an_unmigrated_database_clearly(pg_admin_url, tmp_path):
    from ledgerbridge.tools.stack import throwaway_database

    with throwaway_database(
        pg_admin_url, prefix="lb_cli_empty", migrate_it=False
    ) as url:
        result = _run(["conflicts", "list"], url, tmp_path)
    assert result.exit_code == 2
    assert "ledgerbridge migrate" in result.output


async def test_cli_lists_shows_and_resolves_a_conflict(stack, tmp_path):
    invoice = await factories.internal_invoice(stack, number="INV-CLI-1")
    await stack.settle()
    qbo_id = (await stack.qbo_invoice_by_number("INV-CLI-1"))[0]["Id"]
    await factories.internal_patch(stack, invoice["id"], {"memo": "internal says"})
    await factories.qbo_sparse_update(
        stack, qbo_id, {"CustomerMemo": {"value": "qbo says"}}
    )
    await stack.settle()
    url = stack.services.database_url

    listed = await asyncio.to_thread(_run, ["conflicts", "list"], url, tmp_path)
    assert "INV-CLI-1: memo" in listed.output, listed.output
    conflict_id = listed.output.split()[0]

    shown = await asyncio.to_thread(
        _run, ["conflicts", "show", conflict_id], url, tmp_path
    )
    assert '"internal says"' in shown.output and '"qbo says"' in shown.output

    refused = await asyncio.to_thread(
        _run, ["conflicts", "resolve", conflict_id], url, tmp_path
    )
    assert refused.exit_code == 1
    assert "memo" in refused.output

    resolved = await asyncio.to_thread(
        _run,
        ["conflicts", "resolve", conflict_id, "--take", "memo=qbo", "--by", "Sam"],
        url,
        tmp_path,
    )
    assert resolved.exit_code == 0, resolved.output
    await stack.settle()
    current = (await stack.internal.get(f"/api/invoices/{invoice['id']}")).json()
    assert current["memo"] == "qbo says"

    again = await asyncio.to_thread(
        _run, ["conflicts", "resolve", conflict_id, "--take", "memo=qbo"], url, tmp_path
    )
    assert again.exit_code == 1
    assert "already resolved" in again.output


async def test_cli_replays_an_event_and_reports_unknown_ones(stack, tmp_path):
    await factories.internal_invoice(stack, number="INV-CLI-2")
    await stack.settle()
    event_id = str((await stack.events())[-1]["id"])
    url = stack.services.database_url

    replayed = await asyncio.to_thread(_run, ["replay", event_id], url, tmp_path)
    assert replayed.exit_code == 0, replayed.output
    assert '"enqueued": 1' in replayed.output
    missing = await asyncio.to_thread(_run, ["replay", "999999"], url, tmp_path)
    assert missing.exit_code == 1
    assert "no event 999999" in missing.output
