"""The HTTP side of the CLI: one small client over urllib for the three dialects, and the saved session.

The CLI talks to the API only, local (`make run`) or deployed; it never imports the core.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

DEFAULT_URL = "http://127.0.0.1:3000"  # where `make run` serves the API
Dialect = Literal["runtime", "gateway", "tasks"]
# Each dialect's own token header (every route accepts any of them; each dialect documents its own).
AUTH_HEADERS: dict[str, tuple[str, str]] = {
    "runtime": ("token", "{}"),
    "gateway": ("Authorization", "Bearer {}"),
    "tasks": ("X-Auth-Token", "{}"),
}
MAX_REDIRECTS = 5


class CliError(Exception):
    """Something to tell the user in one message (never a traceback)."""

    def __init__(
        self, message: str, *, details: list[str] | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.status = status
        self.code = code  # the API's own error code, where its answer has one (`passwordChangeRequired`)


class ApiError(CliError):
    """The API answered with an error: its own message and details, whatever the dialect's format."""

    @classmethod
    def of(cls, status: int, body: bytes, url: str) -> ApiError:
        try:
            data: Any = json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace").strip()
            return cls(f"HTTP {status} from {url}" + (f": {text[:500]}" if text else ""), status=status)
        if not isinstance(data, dict):
            return cls(f"HTTP {status}: {json.dumps(data)[:500]}", status=status)
        message = str(data.get("message") or data.get("error") or f"HTTP {status}")
        details: list[str] = []
        for detail in data.get("details") or []:  # gateway (Spring)
            details.append(str(detail))
        for error in data.get("errors") or []:  # runtime validationErrors
            if isinstance(error, dict):
                details.append(f"{error.get('field', '')}: {error.get('message', error.get('code', ''))}".strip(": "))
            else:
                details.append(str(error))
        if data.get("status") == "error" and data.get("data") not in (None, {}, [], {"message": message}):
            details.append(json.dumps(data["data"], sort_keys=True))  # tasks (Kazoo): what was wrong
        code = data.get("code") if isinstance(data.get("code"), str) else None
        return cls(message, details=details, status=status, code=code)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise CliError(f"the API answered {self.status} with something that is not JSON") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by the client itself, so a token is never sent to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class Client:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        dialect: Dialect,
        query: list[tuple[str, str]] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        authenticated: bool = True,
    ) -> Reply:
        """One request; an error status raises ApiError with the API's own message."""
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": accept}
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if authenticated:
            if not self.token:
                raise CliError(f"not logged in to {self.base_url}: run `backroom login` first")
            name, form = AUTH_HEADERS[dialect]
            headers[name] = form.format(self.token)
        reply = self._send(method, url, headers, data)
        for _ in range(MAX_REDIRECTS):
            if reply.status not in (301, 302, 303, 307, 308) or "location" not in reply.headers:
                break
            target = urllib.parse.urljoin(url, reply.headers["location"])
            same_host = urllib.parse.urlsplit(target).netloc == urllib.parse.urlsplit(url).netloc
            kept = headers if same_host else {"Accept": accept}  # a presigned URL needs no token
            url, reply = target, self._send("GET", target, kept, None)
        if reply.status >= 400:
            error = ApiError.of(reply.status, reply.body, path)
            if reply.status == 401 and authenticated:
                error.details.append(f"log in again: backroom login (the token for {self.base_url} is not valid)")
            raise error
        return reply

    def put_to(self, url: str, data: BinaryIO, headers: dict[str, str]) -> None:
        """PUT a stream to a presigned URL the API handed out (S3's): with the headers it gave, never the
        token. The stream is sent as it is read, so a big file is never held in memory."""
        reply = self._send("PUT", url, dict(headers), data)
        if reply.status >= 300:
            raise ApiError.of(reply.status, reply.body, urllib.parse.urlsplit(url).path)

    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | BinaryIO | None) -> Reply:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CliError(f"{url} is not an http(s) URL")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - scheme checked
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                return Reply(response.status, _lower(response.headers), response.read())
        except urllib.error.HTTPError as err:
            with err:
                return Reply(err.code, _lower(err.headers), err.read())
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise CliError(
                f"cannot reach {self.base_url}: {reason} (is `make run` running, or is --url right?)"
            ) from None


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()} if headers else {}


# The saved session -------------------------------------------------------------------------------
def config_dir() -> Path:
    """$XDG_CONFIG_HOME/backroom, else ~/.config/backroom."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "backroom"


def session_file() -> Path:
    return config_dir() / "session.json"


def _read_sessions() -> dict[str, Any]:
    try:
        data = json.loads(session_file().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read {session_file()}: {err}; remove it and log in again") from None
    return data.get("sessions", {}) if isinstance(data, dict) else {}


def _write_sessions(sessions: dict[str, Any]) -> None:
    """Written to a file only its owner can read (0600) in a directory only its owner can enter (0700)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".session-", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"sessions": sessions}, out, indent=2, sort_keys=True)
        os.chmod(temp, 0o600)
        os.replace(temp, session_file())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_session(base_url: str) -> dict[str, Any] | None:
    found = _read_sessions().get(base_url.rstrip("/"))
    return found if isinstance(found, dict) else None


def save_session(base_url: str, session: dict[str, Any]) -> Path:
    sessions = _read_sessions()
    sessions[base_url.rstrip("/")] = session
    _write_sessions(sessions)
    return session_file()


def forget_session(base_url: str) -> bool:
    sessions = _read_sessions()
    if sessions.pop(base_url.rstrip("/"), None) is None:
        return False
    _write_sessions(sessions)
    return True
