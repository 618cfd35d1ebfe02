"""The `imap` source's config: required login secrets, a plain-text mailbox warned about, the move folder checked."""

from __future__ import annotations

import pytest

from alertbridge.config import validate_config
from alertbridge.errors import ConfigError

MAILBOX = {"type": "imap", "host": "mail.acme.com", "username": "phish@acme.com", "login": {"mode": "password", "password": "pw"}}


def test_plain_text_is_warned_about_by_check():
    config = validate_config({"sources": {"phish": MAILBOX | {"security": "none"}}})
    assert config.warnings == ["sources.phish.security: none — the mailbox password and every report cross the network "
                               "in clear to mail.acme.com"]  # fmt: skip
    assert validate_config({"sources": {"phish": MAILBOX}}).warnings == []


@pytest.mark.parametrize(("login", "missing"), [
    ({"mode": "password"}, "login.password.password"),
    ({"mode": "xoauth2", "token_url": "https://login.example/token", "client_id": "app"}, "login.xoauth2.client_secret"),
])  # fmt: skip
def test_the_login_secret_is_required(login, missing):
    with pytest.raises(ConfigError, match=rf"sources\.phish\.{missing}: field required"):
        validate_config({"sources": {"phish": MAILBOX | {"login": login}}})


def test_the_processed_folder_is_not_one_that_is_read():
    with pytest.raises(ConfigError, match="processed_folder must not be one of the folders read"):
        validate_config({"sources": {"phish": MAILBOX | {"folders": ["INBOX", "Processed"]}}})
