"""Phishing reports from a mailbox: the `imap` source.

    config.py   the mailbox, the login (password or XOAUTH2), folders, what happens after ingest
    mailbox.py  one imapclient connection per folder (TLS/STARTTLS, IDLE, mark/move), typed errors
    token.py    the client-credentials token for XOAUTH2, on the shared auth flow
    parser.py   the parse-only class (what `alertbridge parse` runs) and the inbox item
    source.py   the poller: UIDVALIDITY+UID cursor, IDLE or polling, nothing touched before commit
    mail.py     reading hostile MIME safely (BadMail and its kinds)
    report.py   finding the reported original and its evidence
    evidence.py auth verdicts, Received IPs, links, attachments, lookalikes, defanging
    alert.py    the evidence as alerts and ticket text
"""

from .config import ImapConfig, ImapParserConfig
from .parser import ImapParser
from .source import ImapSource

__all__ = ["ImapConfig", "ImapParser", "ImapParserConfig", "ImapSource"]
