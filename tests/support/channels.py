"""Real servers on loopback for the channels people carry: an SMTP server that requires
STARTTLS and a login (aiosmtpd, with a throwaway CA), a fake of the Telegram Bot API that
checks requests the way Telegram does, and an HTTP gateway that records what it is sent and
answers what the test says (an SMS gateway, or a webhook that asks to come back later)."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ioc.brokers import free_port
from ioc.certs import make_dev_ca


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool  # the session had been upgraded by STARTTLS when the message came
    login: str | None


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS before anything (and a login after it)."""

    folder: Path
    username: str = "ioc"
    password: str = "relay-secret"
    mails: list[Mail] = field(default_factory=list)
    port: int = 0

    @property
    def ca_file(self) -> str:
        return str(self.folder / "ca.crt")

    @contextlib.contextmanager
    def running(self) -> Iterator[SmtpServer]:
        files = make_dev_ca(self.folder, ("localhost", "127.0.0.1"))
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(files.server_cert, files.server_key)
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                login = session.auth_data.login.decode() if session.authenticated else None
                server.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), parsed,
                                         session.ssl is not None, login))  # fmt: skip
                return "250 OK"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:  # fmt: skip
            ok = isinstance(data, LoginPassword) and (data.login.decode(),
                                                      data.password.decode()) == (
                self.username, self.password)  # fmt: skip
            return AuthResult(success=ok, handled=False, auth_data=data)

        self.port = free_port()
        controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, tls_context=tls,
            require_starttls=True, authenticator=authenticate, auth_required=True,
        )  # fmt: skip
        controller.start()
        try:
            yield self
        finally:
            controller.stop()


@dataclass
class Answer:
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpReceiver:
    """A real HTTP server in a thread: records each request (method, path, headers, body) and
    answers the next of ``answers`` (then ``default``)."""

    answers: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append((method, path, headers, body))
            return self.answers.pop(0) if self.answers else self.default

    @contextlib.contextmanager
    def running(self) -> Iterator[HttpReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                a = receiver.answer(self.command, self.path, headers, raw)
                out = json.dumps(a.body).encode()
                self.send_response(a.status)
                for k, v in {"Content-Type": "application/json", **a.headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_GET = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


class FakeTelegram(HttpReceiver):
    """The Bot API's sendMessage as Telegram answers it: 404 for a wrong token in the path,
    400 "chat not found" for a chat the bot is not in, else ``ok`` (or a queued answer, such
    as a 429 with ``parameters.retry_after``)."""

    def __init__(self, token: str, chats: set[str]) -> None:
        super().__init__()
        self.token, self.chats = token, chats

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != f"/bot{self.token}/sendMessage" or method != "POST":
            return Answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        sent = json.loads(body)
        if str(sent.get("chat_id")) not in self.chats:
            return Answer(400, {"ok": False, "error_code": 400,
                                "description": "Bad Request: chat not found"})  # fmt: skip
        if not isinstance(sent.get("text"), str) or not sent["text"]:
            return Answer(400, {"ok": False, "error_code": 400,
                                "description": "Bad Request: message text is empty"})  # fmt: skip
        return super().answer(method, path, headers, body)

    def messages(self) -> list[dict[str, Any]]:
        """The sendMessage bodies answered ``ok``."""
        return [json.loads(b) for _, _, _, b in self.requests]


def too_many_requests(retry_after: int) -> Answer:
    """Telegram's flood-control answer."""
    return Answer(429, {"ok": False, "error_code": 429,
                        "description": f"Too Many Requests: retry after {retry_after}",
                        "parameters": {"retry_after": retry_after}})  # fmt: skip
