"""Fenced code blocks in the plain text the hub writes: an ADF codeBlock on Cloud, {noformat} on Data Center."""

from __future__ import annotations

from alertbridge.connectors.jira.markup import escape_wiki, to_adf

TEXT = "Headers:\n```\nFrom: x [~admin] {noformat} *b*\nSubject: !http://evil/x.png!\n```\nMailbox: imap://a@b/INBOX"


def test_a_fenced_block_is_an_adf_code_block_with_the_text_verbatim():
    content = to_adf(TEXT)["content"]
    assert [node["type"] for node in content] == ["paragraph", "codeBlock", "paragraph"]
    assert content[1]["content"] == [{"type": "text", "text": "From: x [~admin] {noformat} *b*\nSubject: !http://evil/x.png!"}]


def test_a_fenced_block_is_noformat_in_wiki_and_cannot_close_it_early():
    wiki = escape_wiki(TEXT)
    assert wiki == ("Headers:\n{noformat}\nFrom: x [~admin] { noformat} *b*\nSubject: !http://evil/x.png!\n{noformat}\n"
                    "Mailbox: imap://a@b/INBOX")


def test_an_unclosed_fence_is_ordinary_text():
    assert escape_wiki("a\n```\n*b*") == "a\n```\n\\*b\\*"
    assert all(node["type"] == "paragraph" for node in to_adf("a\n```\n*b*")["content"])
