"""The report parser on the real phishing samples and on generated reports of each shape."""

from __future__ import annotations

import base64
import hashlib

import pytest

from alertbridge.connectors.imap import ImapParser
from alertbridge.connectors.imap.mail import EncodedWordTrick, MalformedMime, MessageTooLarge, UnknownCharset
from alertbridge.errors import PayloadError
from conftest import vendor_path
from support import phish

BBVA = "phishing-eml/bbva-impersonation-transfer-phish.eml"
MALSPAM = "phishing-eml/malspam-invoice-js-attachment-stripped.eml"


def source(**overrides) -> ImapParser:
    return ImapParser("phish", ImapParser.Config.model_validate({"type": "imap", "own_domains": ["acme.com"]} | overrides))


def parse(raw: bytes, **overrides):
    reader = source(**overrides)
    return reader.parse(reader.payload_from_file(raw))


def test_the_bbva_sample_shows_its_spoofing():
    raw = vendor_path(BBVA).read_bytes()
    (alert,) = parse(raw)
    facts = alert.raw
    assert facts["found_as"] == "message"
    assert facts["from"]["address"] == "notificaccion-clientes@bbva.mx"
    assert facts["reply_to"] == ["info@alejandrosalcedo.es"]
    assert facts["return_path"] == "www-data@vps-051e4cda.vps.ovh.net"
    assert any("Reply-To info@alejandrosalcedo.es" in m for m in facts["mismatches"])
    assert any("Return-Path" in m for m in facts["mismatches"])
    assert facts["auth"]["spf"] == "none" and facts["auth"]["authserv_id"] == "mailb.triara.com"
    # 172.18.31.175 (private) and 127.0.0.1 are in the chain too, and are not evidence.
    assert facts["received_ips"] == ["200.57.129.98", "152.228.133.10"]
    assert facts["message_key"] == "202210102011.29AKBWwn005317@vps-051e4cda.vps.ovh.net"
    assert alert.title == "Reported phishing: Transferencia Interbancaria Banca en Línea"
    assert alert.observables.users == ["compliance@akaancasadebolsa.com.mx"]  # delivered to, so reported by
    assert alert.category == "phishing"
    (file,) = alert.evidence
    assert file.content == raw and file.sha256 == hashlib.sha256(raw).hexdigest()
    assert "http://" not in alert.description and "https://" not in alert.description
    assert "bbva[.]mx" in alert.description and "bbva.mx" not in alert.description
    assert "```\nFrom: " in alert.description


def test_the_malspam_sample_lists_its_attachment_with_a_hash():
    (alert,) = parse(vendor_path(MALSPAM).read_bytes())
    (attachment,) = alert.raw["attachments"]
    assert attachment["filename"] == "message.txt" and attachment["content_type"] == "text/plain"
    assert attachment["sha256"] in alert.observables.hashes and len(attachment["sha256"]) == 64
    assert alert.raw["received_ips"] == ["67.175.76.202"]
    assert alert.raw["from"]["address"] == "oneil.844@randtelekom.com.tr"


def test_a_forward_as_attachment_yields_the_original_byte_for_byte():
    original = phish.lure("<lure-1@examp1e-it.com>", attachment=("invoice.pdf.js", b"WScript.Shell"))
    (alert,) = parse(phish.forward_as_attachment(original, "bob@acme.com"))
    facts = alert.raw
    assert facts["found_as"] == "attachment" and facts["reporter"] == "bob@acme.com"
    assert facts["message_id"] == "lure-1@examp1e-it.com"
    assert alert.evidence[0].content == original  # cut from the report as sent, not re-rendered
    assert facts["auth"] == {"spf": "softfail", "dkim": "none", "dmarc": "fail", "authserv_id": "mx.acme.com"}
    assert facts["received_ips"] == ["45.155.205.233"]  # 10.0.0.5, the company's own hop, is not evidence
    assert facts["attachments"][0]["risk"] == ".js runs code when opened"
    assert {"domain": "acme-it.com", "of": "acme.com"} in facts["lookalikes"]
    assert {"domain": "acme.com.mailbox-restore.example", "of": "acme.com"} in facts["lookalikes"]
    (mismatch,) = facts["link_mismatches"]
    assert mismatch["text_domain"] == "portal.acme.com" and mismatch["href_domain"] == "login.mailbox-restore.example"
    assert "https://track.mailbox-restore.example/p.gif" in facts["urls"]
    assert "hxxps://login[.]mailbox-restore[.]example/acme?u=alice" in alert.description
    assert alert.observables.users == ["bob@acme.com"]


def test_a_macro_document_is_risky():
    original = phish.lure(attachment=("report.docx", phish.macro_document()))
    (alert,) = parse(phish.forward_as_attachment(original, "bob@acme.com"))
    assert alert.raw["attachments"][0]["risk"] == "an Office document with a VBA macro project"


def test_an_inline_forward_keeps_the_quoted_sender_and_hashes_the_case_key():
    body = "Click https://evil.example/reset now"
    report = phish.inline_forward("carol@acme.com", "Payroll <payroll@acme-hr.example>", "Salary update", body)
    (alert,) = parse(report)
    facts = alert.raw
    assert facts["found_as"] == "inline_forward" and facts["reporter"] == "carol@acme.com"
    assert facts["from"]["address"] == "payroll@acme-hr.example" and facts["subject"] == "Salary update"
    assert facts["urls"] == ["https://evil.example/reset"]
    assert facts["message_id"] is None and facts["message_key"].startswith("sha256:")
    again = phish.inline_forward("dave@acme.com", "Payroll <payroll@acme-hr.example>", "Salary update", body)
    assert parse(again)[0].raw["message_key"] == facts["message_key"]  # the same lure from another user: one case
    assert alert.evidence[0].filename == "report.eml"


def test_a_redirect_is_the_message_itself_reported_by_its_resender():
    original = phish.lure("<lure-2@examp1e-it.com>")
    (alert,) = parse(phish.redirect(original, "erin@acme.com"))
    assert alert.raw["found_as"] == "message" and alert.raw["reporter"] == "erin@acme.com"
    assert alert.raw["message_key"] == "lure-2@examp1e-it.com"


def test_several_attached_originals_make_several_alerts():
    first, second = phish.lure("<a@x.example>"), phish.lure("<b@x.example>", subject="Invoice")
    alerts = parse(phish.forward_as_attachment(first, "bob@acme.com", "two of them", second))
    assert [a.raw["message_key"] for a in alerts] == ["a@x.example", "b@x.example"]
    assert len({a.id for a in alerts}) == 2


def test_a_lure_without_message_id_gets_a_hash_key():
    (alert,) = parse(phish.lure(with_message_id=False))
    assert alert.raw["message_key"].startswith("sha256:")


BAD_MAIL = {
    "no headers": (b"\x00\x01 just bytes\r\n", MalformedMime, "does not start with a header block"),
    "multipart without boundary": (b"From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n", MalformedMime, "no boundary"),
    "unknown body charset": (b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla\r\n",
                             UnknownCharset, "x-klingon"),
    "unknown encoded-word charset": (b"From: a@b.example\r\nSubject: =?x-klingon?q?qapla?=\r\n\r\nx\r\n", UnknownCharset, "x-klingon"),
    "encoded CR LF in the subject": (b"From: a@b.example\r\nSubject: =?utf-8?b?aGkNCkJjYzogeEB5LmNvbQ==?=\r\n\r\nx\r\n",
                                     EncodedWordTrick, "control characters"),
    "encoded CR LF in the sender": (b"From: =?utf-8?q?Bank=0D=0ABcc=3A_x=40y.com?= <a@b.example>\r\nSubject: x\r\n\r\nx\r\n",
                                    EncodedWordTrick, "(?i)header from"),
    "encoded-word inside an address": (b"From: <=?utf-8?q?evil?=@b.example>\r\nSubject: x\r\n\r\nx\r\n", EncodedWordTrick, "address"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_MAIL))
def test_bad_mail_is_a_typed_error_that_says_why(name):
    raw, error, words = BAD_MAIL[name]
    with pytest.raises(error, match=words) as caught:
        parse(raw)
    assert isinstance(caught.value, PayloadError)  # the pipeline dead-letters it with the raw body kept


def test_bad_mail_inside_a_forward_is_caught_too():
    inner = b"From: a@b.example\r\nSubject: =?utf-8?b?aGkNCkJjYzogeEB5LmNvbQ==?=\r\n\r\nx\r\n"
    with pytest.raises(EncodedWordTrick):
        parse(phish.forward_as_attachment(inner, "bob@acme.com"))


def test_a_message_over_the_cap_is_too_large():
    raw = phish.lure(attachment=("big.bin", b"x" * 5000))
    with pytest.raises(MessageTooLarge, match="over the 4096-byte cap"):
        parse(raw, max_bytes=4096)
    reader = source(max_bytes=4096)
    item = reader.payload_from_file(raw)
    assert len(base64.b64decode(item["raw"])) == 4096 and item["truncated"] and item["size"] == len(raw)


def test_a_payload_that_is_not_a_mailbox_item_is_a_payload_error():
    with pytest.raises(PayloadError, match="not a mailbox item"):
        source().parse({"hello": 1})
    with pytest.raises(PayloadError, match="not base64"):
        source().parse({"raw": "***"})
