"""The `imap` poller against a real Dovecot: once-only ingest across restarts, UIDVALIDITY resets, IDLE, logins."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from conftest import vendor_path

from alertbridge.errors import AuthFailed, Permanent
from alertbridge.pipeline.poll import PollRunner
from support import phish
from support.polling import drain, stored

SAMPLES = ["phishing-eml/bbva-impersonation-transfer-phish.eml", "phishing-eml/malspam-invoice-js-attachment-stripped.eml"]


def seed(mailbox, folder: str = "INBOX") -> list[bytes]:
    """Deliver the real samples and a report of each shape; return them in delivery order."""
    original = phish.lure("<lure-100@examp1e-it.com>")
    messages = [vendor_path(p).read_bytes() for p in SAMPLES] + [
        phish.forward_as_attachment(original, "bob@acme.com"),
        phish.forward_as_attachment(original, "carol@acme.com"),
        phish.inline_forward("dave@acme.com", "Payroll <payroll@acme-hr.example>", "Salary update", "https://evil.example/x"),
        phish.redirect(phish.lure("<lure-101@examp1e-it.com>"), "erin@acme.com"),
    ]
    mailbox.append(folder, *messages)
    return messages


def runner(store, source) -> PollRunner:
    return PollRunner(store, source, "test-node", asyncio.Event())


async def drained(store, source) -> float:
    """Poll until caught up, log out; return the wait the runner asked for."""
    try:
        return await drain(runner(store, source))
    finally:
        await source.aclose()


async def all_once_then_moved(store, mailbox, messages: list[bytes]) -> None:
    """Assert every message is in the inbox exactly once and the mailbox moved each to Processed."""
    ids = await stored(store)
    assert len(ids) == len(messages) == len(set(ids))
    assert uids(mailbox, "INBOX") == [] and len(uids(mailbox, "Processed")) == len(messages)


def uids(mailbox, folder: str, *criteria) -> list[int]:
    with mailbox.client() as client:
        client.select_folder(folder, readonly=True)
        return client.search(list(criteria) or ["ALL"])


async def test_the_first_run_ingests_everything_then_moves_it(store, mailbox):
    messages = seed(mailbox)
    assert await drained(store, mailbox.source(page_size=4)) == 3600
    await all_once_then_moved(store, mailbox, messages)


async def test_several_folders_are_read_and_an_idle_push_on_any_of_them_counts(store, mailbox):
    mailbox.append("INBOX", phish.forward_as_attachment(phish.lure(), "bob@acme.com"))
    mailbox.append("Reported", phish.forward_as_attachment(phish.lure(), "carol@acme.com"))
    async with running(store, mailbox.source(folders=["INBOX", "Reported"], idle=True, idle_wait=45)) as polling:
        await _until(lambda: _count(store, 2), 20)
        await asyncio.sleep(0.5)
        mailbox.append("Reported", phish.forward_as_attachment(phish.lure(), "dave@acme.com"))  # the second folder's IDLE
        await _until(lambda: _count(store, 3), 30)
        # A message is moved by the poll after the one that committed it: wait for that poll, however loaded the machine.
        await _until(lambda: _moved(mailbox, "INBOX", "Reported"), 30)
    assert set(json.loads(await polling.cursor())["folders"]) == {"INBOX", "Reported"}
    assert uids(mailbox, "INBOX") == uids(mailbox, "Reported") == []


async def test_a_restart_mid_folder_loses_nothing_and_repeats_nothing(store, mailbox):
    messages = seed(mailbox)
    first = mailbox.source(page_size=2)
    polling = runner(store, first)
    assert await polling.step() == 0.0  # one page of two committed with its cursor
    # The process dies after fetching the next page and before committing it: that page must stay untouched.
    fetched = await first.poll(await polling.cursor())
    assert len(fetched.items) == 2
    await first.aclose()
    assert len(uids(mailbox, "INBOX")) == len(messages) - 2 and len(uids(mailbox, "Processed")) == 2
    assert uids(mailbox, "INBOX", "SEEN") == []

    await drained(store, mailbox.source(page_size=2))
    await all_once_then_moved(store, mailbox, messages)


async def test_seen_marks_only_committed_messages(store, mailbox):
    seed(mailbox)
    source = mailbox.source(page_size=3, after="seen")
    polling = runner(store, source)
    try:
        await polling.step()
        assert uids(mailbox, "INBOX", "SEEN") == []  # committed, but no later poll has acted on it yet
        await polling.step()
        assert uids(mailbox, "INBOX", "SEEN") == [1, 2, 3]
        await drain(polling)
    finally:
        await source.aclose()
    assert uids(mailbox, "INBOX", "UNSEEN") == []


async def test_a_uidvalidity_reset_rescans_without_duplicates(store, mailbox):
    messages = seed(mailbox, "Reports")
    before = await reports_cursor_after_a_drain(store, mailbox)
    # The folder is rebuilt (a migration, a restore): a new UIDVALIDITY, the same mail in another order, and one new report.
    with mailbox.client() as client:
        client.delete_folder("Reports")
        client.create_folder("Reports")
    newcomer = phish.forward_as_attachment(phish.lure("<lure-102@examp1e-it.com>"), "frank@acme.com")
    mailbox.append("Reports", *reversed(messages), newcomer)
    after = await reports_cursor_after_a_drain(store, mailbox)
    assert after["uidvalidity"] != before["uidvalidity"] and after["uid"] == len(messages) + 1
    ids = await stored(store)
    assert len(ids) == len(messages) + 1 == len(set(ids))


async def reports_cursor_after_a_drain(store, mailbox) -> dict:
    """Read the Reports folder until caught up with a new source (a restart); return that folder's cursor."""
    source = mailbox.source(folders=["Reports"], after="seen")
    await drained(store, source)
    return json.loads(await runner(store, source).cursor())["folders"]["Reports"]


async def test_an_idle_push_arrives_without_waiting_for_the_interval(store, mailbox):
    mailbox.append("INBOX", phish.forward_as_attachment(phish.lure(), "bob@acme.com"))
    # interval is an hour and each IDLE lasts 45 s: only the server's push can bring the second message within 30 s.
    async with running(store, mailbox.source(idle=True, idle_wait=45)):
        await _until(lambda: _count(store, 1), 20)
        await asyncio.sleep(0.5)  # let the poller settle into IDLE
        mailbox.append("INBOX", phish.forward_as_attachment(phish.lure(), "carol@acme.com"))
        await _until(lambda: _count(store, 2), 30)


@contextlib.asynccontextmanager
async def running(store, source):
    """Run the source's poll loop in the background; on the way out cancel it (ending an IDLE at once) and log out."""
    polling = runner(store, source)
    task = asyncio.create_task(polling.run_forever(asyncio.Event()))
    try:
        yield polling
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.aclose()


async def _count(store, expected: int) -> bool:
    return len(await stored(store)) >= expected


async def _moved(mailbox, *folders: str) -> bool:
    return all(uids(mailbox, folder) == [] for folder in folders)


async def _until(check, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds}s")


async def test_a_bad_password_is_auth_failed(mailbox):
    source = mailbox.source(login={"mode": "password", "password": "wrong"})
    with pytest.raises(AuthFailed, match="refused the credentials"):
        await source.poll(None)
    await source.aclose()


async def test_starttls_and_xoauth2_with_a_client_credentials_token(store, mailbox, oauth_server):
    oauth_server.mailbox = mailbox.user
    mailbox.append("INBOX", phish.forward_as_attachment(phish.lure(), "bob@acme.com"))
    login = {"mode": "xoauth2", "token_url": f"{oauth_server.url}/token", "client_id": "test-app", "client_secret": "test-app-secret"}
    source = mailbox.source(security="starttls", port=mailbox.server.imap_port, login=login)
    try:
        await drain(runner(store, source))
    finally:
        await source.aclose()
    assert len(await stored(store)) == 1

    wrong = mailbox.source(security="starttls", port=mailbox.server.imap_port, login=login | {"client_secret": "nope"})
    with pytest.raises(AuthFailed, match="Invalid client secret"):
        await wrong.poll(None)
    await wrong.aclose()


async def test_a_server_certificate_that_does_not_verify_is_permanent(mailbox):
    source = mailbox.source(ca=None)
    with pytest.raises(Permanent, match="certificate does not verify"):
        await source.poll(None)
    await source.aclose()
