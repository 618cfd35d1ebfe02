"""The `imap` source's configuration: the mailbox, how to log in, what to read, what to do after."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from ..roles import ParserConfig, PollerConfig, StrictModel

MIB = 1024 * 1024


class PasswordLogin(StrictModel):
    """LOGIN with the mailbox's password (an app password on Gmail; Microsoft 365 has turned basic auth off)."""

    mode: Literal["password"] = Field(description="Log in with a password", examples=["password"])
    password: SecretStr = Field(description="The mailbox password", examples=["${PHISH_MAILBOX_PASSWORD}"])


class OAuth2Login(StrictModel):
    """SASL XOAUTH2 with an app-only token from the client-credentials grant (Microsoft 365, Google Workspace)."""

    mode: Literal["xoauth2"] = Field(description="Log in with an OAuth2 access token", examples=["xoauth2"])
    token_url: str = Field(
        description="The token endpoint of the identity provider",
        examples=["https://login.microsoftonline.com/<tenant id>/oauth2/v2.0/token"], pattern=r"^https?://",
    )
    client_id: str = Field(description="The app registration's client (application) id", examples=["8a3f…"])
    client_secret: SecretStr = Field(description="The app registration's client secret", examples=["${PHISH_APP_SECRET}"])
    scope: str = Field(default="https://outlook.office365.com/.default", description="The scope asked for",
                       examples=["https://outlook.office365.com/.default"])  # fmt: skip


class ImapParserConfig(ParserConfig):
    """What reading a report needs: the size cap, the company's domains, the mail servers whose verdicts count."""

    max_bytes: int = Field(default=25 * MIB, gt=0, description="Size cap of one message; a larger one is dead-lettered with "
                           "its first max_bytes kept", examples=[25 * MIB])  # fmt: skip
    own_domains: list[str] = Field(default=[], description="The company's domains, for spotting lookalikes", examples=[["acme.com"]])
    trusted_authserv_ids: list[str] = Field(
        default=[], description="authserv-ids of your own mail servers: only their Authentication-Results count "
        "(empty: the topmost header)", examples=[["mx.acme.com"]],
    )


class ImapConfig(ImapParserConfig, PollerConfig):
    """A reporting mailbox users forward suspicious mail to."""

    host: str = Field(description="IMAP server host name", examples=["outlook.office365.com"])
    port: int | None = Field(default=None, ge=1, le=65535, description="Port; default 993 for tls, 143 otherwise", examples=[993])
    security: Literal["tls", "starttls", "none"] = Field(
        default="tls", description="tls: implicit TLS (993); starttls: upgrade the plain connection (143), refusing a server "
        "that does not offer it; none: plain text, for a server on localhost only", examples=["tls"],
    )
    ca: str | None = Field(default=None, description="PEM certificate(s) of the CA that signed the server's, when it is not a "
                           "public one; write `ca_file: <path>` to read them from a file", examples=["${IMAP_CA_PEM}"])  # fmt: skip
    username: str = Field(description="The mailbox to log in as", examples=["phish-reports@acme.com"])
    login: Annotated[PasswordLogin | OAuth2Login, Field(discriminator="mode")] = Field(
        description="How to log in: a password, or XOAUTH2 with a client-credentials token",
        examples=[{"mode": "password", "password": "${PHISH_MAILBOX_PASSWORD}"}],
    )
    folders: list[str] = Field(default=["INBOX"], min_length=1, description="Folders to read", examples=[["INBOX", "Reported"]])
    after: Literal["leave", "seen", "move"] = Field(
        default="move", description="What happens to a message once its raw copy is committed: leave it, set \\Seen, "
        "or move it to `processed_folder`", examples=["move"],
    )
    processed_folder: str = Field(default="Processed", description="Where `after: move` puts ingested messages (created if missing)",
                                  examples=["Processed"])  # fmt: skip
    idle: bool = Field(default=True, description="Wait with IMAP IDLE where the server offers it; poll every `interval` otherwise",
                       examples=[True])  # fmt: skip
    idle_wait: float = Field(default=10.0, gt=0, le=50, description="Longest single IDLE wait in seconds (under the poll "
                             "lease; a shutdown waits for it), after which the folders are checked again", examples=[10])  # fmt: skip
    page_size: int = Field(default=20, ge=1, le=500, description="Messages fetched per poll", examples=[20])
    message_link: str | None = Field(
        default=None, description="Link back to the message, with {folder} {uidvalidity} {uid} {message_id} {username} {host}; "
        "default an RFC 5092 imap:// URL", examples=["https://mail.google.com/mail/u/0/#search/rfc822msgid:{message_id}"],
    )

    @model_validator(mode="after")
    def _check(self) -> ImapConfig:
        if self.after == "move" and self.processed_folder in self.folders:
            raise ValueError("processed_folder must not be one of the folders read")
        return self

    def warnings(self, name: str) -> list[str]:
        """Warn about a mailbox read over plain text."""
        if self.security != "none":
            return []
        return [f"security: none — the mailbox password and every report cross the network in clear to {self.host}"]

    @property
    def server_port(self) -> int:
        """Return the port to connect to."""
        return self.port or (993 if self.security == "tls" else 143)
