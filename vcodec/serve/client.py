"""Blocking HTTP clients: read a served stream, publish a live one.

These use only the standard library (``http.client``), so tools that read a
stream (``vcodec decode URL``, ``vcodec detect URL``, ``vcodec analyze``)
need no event loop: :func:`open_url` returns a binary file object that
:class:`~vcodec.bitstream.StreamReader` reads front to back like a pipe.

Tokens come from the ``token`` argument or the ``VCODEC_TOKEN`` environment
variable (so they stay out of process listings).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import urllib.parse
from typing import Any

from vcodec.errors import ConfigError, InputError, OutputError

__all__ = [
    "is_url",
    "stream_url",
    "open_url",
    "HTTPStream",
    "Publisher",
    "TOKEN_ENV",
    "StreamConnectionError",
]

TOKEN_ENV = "VCODEC_TOKEN"


class StreamConnectionError(InputError):
    """The connection to a stream server failed, stalled or dropped: worth retrying (unlike 4xx refusals)."""


def is_url(text: str | os.PathLike[str]) -> bool:
    """True for ``http://`` and ``https://`` addresses (what the stream-reading commands accept)."""
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


def stream_url(url: str, *, layers: str | None = None, start: int | None = None) -> str:
    """``url`` with ``layers=``/``start=`` set (replacing values already in it)."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if layers is not None:
        query["layers"] = layers
    if start is not None:
        query["start"] = str(start)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url}: expected an http:// or https:// URL")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def _auth_headers(token: str | None) -> dict[str, str]:
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _refusal(url: str, status: int, reason: str, body: bytes) -> Exception:
    text = body.decode("utf-8", "replace").strip().splitlines()
    msg = f"{url}: HTTP {status} {reason}" + (f": {text[0]}" if text else "")
    if status in (401, 403):
        return ConfigError(msg + ("" if status == 403 else f" (pass --token or set {TOKEN_ENV})"))
    if status == 400:
        return ConfigError(msg)
    if status in (502, 503, 504):
        return StreamConnectionError(msg)
    return InputError(msg)


class HTTPStream(io.RawIOBase):
    """A served stream as a read-only binary file (no seeking)."""

    def __init__(self, url: str, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        super().__init__()
        self.url = url
        self.name = url
        self._conn = conn
        self._resp = resp
        self.headers = dict(resp.getheaders())
        self.bytes_read = 0

    @property
    def live(self) -> bool:
        return self.headers.get("X-Vcodec-Stream-Kind") == "live"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        try:
            # read1 returns what has arrived (at least one byte) rather than waiting for all n
            data = self._resp.read() if n is None or n < 0 else self._resp.read1(n)
        except TimeoutError:
            raise StreamConnectionError(
                f"{self.url}: no data for {self._conn.timeout} s (server or network stalled)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise StreamConnectionError(
                f"{self.url}: connection lost ({exc or type(exc).__name__})"
            ) from None
        self.bytes_read += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._resp.close()
            finally:
                self._conn.close()
        super().close()


def open_url(url: str, *, layers: str | None = None, token: str | None = None, start: int | None = None,
             timeout: float = 30.0) -> HTTPStream:
    """GET a served stream; raises a typed error for refusals (401/403/400 ConfigError, 404 InputError)."""
    full = stream_url(url, layers=layers, start=start)
    conn, path = _connection(full, timeout)
    try:
        conn.request("GET", path, headers=_auth_headers(token) | {"Accept": "application/vnd.vcodec.stream"})
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise StreamConnectionError(f"{full}: cannot connect ({exc or type(exc).__name__}); "
                                    "is `vcodec serve` running?") from None
    if resp.status != 200:
        body = resp.read(4096)
        conn.close()
        raise _refusal(full, resp.status, resp.reason, body)
    return HTTPStream(full, conn, resp)


class Publisher(io.RawIOBase):
    """A binary sink that streams what is written to ``POST URL`` (chunked), for live publishing.

    >>> with Publisher("http://127.0.0.1:8080/streams/cam1") as sink:
    ...     encoder = Encoder(sink, info)   # the encoder writes the stream as it is produced
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        self.url = url
        self.name = url
        self._conn, path = _connection(url, timeout)
        self.bytes_sent = 0
        self.result: dict[str, Any] | None = None
        try:
            self._conn.putrequest("POST", path)
            for k, v in (_auth_headers(token) | {"Content-Type": "application/vnd.vcodec.stream",
                                                  "Transfer-Encoding": "chunked"}).items():
                self._conn.putheader(k, v)
            self._conn.endheaders()
        except OSError as exc:
            self._conn.close()
            raise OutputError(f"{url}: cannot connect to publish ({exc.strerror or exc})") from None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if not data:
            return 0
        try:
            self._conn.send(b"%x\r\n" % len(data) + data + b"\r\n")
        except OSError as exc:
            # the server answered early (refusal) or went away: report what it said
            raise self._server_error(f"connection lost while publishing ({exc.strerror or exc})") from None
        self.bytes_sent += len(data)
        return len(data)

    def _server_error(self, fallback: str) -> Exception:
        try:
            resp = self._conn.getresponse()
            return _refusal(self.url, resp.status, resp.reason, resp.read(4096))
        except (OSError, http.client.HTTPException):
            return OutputError(f"{self.url}: {fallback}")

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._conn.send(b"0\r\n\r\n")
            resp = self._conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise _refusal(self.url, resp.status, resp.reason, body)
            self.result = json.loads(body or b"{}")
        except OSError as exc:
            raise OutputError(f"{self.url}: publishing failed at the end ({exc.strerror or exc})") from None
        finally:
            self._conn.close()
            super().close()
