"""Who is acting in the dashboard: a token per operator, a signed session cookie, CSRF tokens.

`unity-mlops ui token NAME` creates a random token and stores only its SHA-256 (in `<state>/ui-tokens`, mode 0600);
the operator signs in with it once, and the browser then holds an HttpOnly, SameSite=Strict session cookie signed
with a key the server draws at start (sessions end with the server). Without a session the dashboard is read-only.
The identity that acts is the token's name, never a form field. Every state-changing form carries a CSRF token
bound to the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from ..durable import replacing

SESSION_COOKIE = "unity_mlops_session"
SESSION_TTL_S = 12 * 3600
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class TokenError(ValueError):
    pass


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(path: Path, name: str) -> str:
    """A new token for `name` (replacing its previous one); only its digest is stored."""
    if not name or len(name) > 64 or set(name) - NAME_CHARS:
        raise TokenError(f"operator name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    token = secrets.token_urlsafe(32)
    entries = {n: d for n, d in read_tokens(path).items() if n != name}
    entries[name] = _digest(token)
    with replacing(path, mode=0o600) as fh:
        fh.write("".join(f"{n} {d}\n" for n, d in sorted(entries.items())).encode())
    return token


def read_tokens(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and len(parts[1]) == 64:
            out[parts[0]] = parts[1]
    return out


class Sessions:
    def __init__(self, tokens_file: Path, key: bytes | None = None) -> None:
        self.tokens_file = tokens_file
        self.key = key or secrets.token_bytes(32)

    def login(self, token: str) -> str | None:
        """The operator the token belongs to (compared in constant time), else None."""
        digest = _digest(token.strip())
        found = None
        for name, known in read_tokens(self.tokens_file).items():
            if hmac.compare_digest(known, digest):
                found = name
        return found

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, name: str) -> str:
        body = f"{name}|{int(time.time()) + SESSION_TTL_S}"
        return f"{body}|{self._sign(body)}"

    def identity(self, cookie: str | None) -> str | None:
        """The operator a session cookie proves (its token must still be on file), else None."""
        if not cookie or cookie.count("|") != 2:
            return None
        name, expires, sig = cookie.split("|")
        if not hmac.compare_digest(sig, self._sign(f"{name}|{expires}")):
            return None
        if not expires.isdigit() or int(expires) < time.time() or name not in read_tokens(self.tokens_file):
            return None
        return name

    def csrf(self, cookie: str | None) -> str:
        return self._sign(f"csrf|{cookie or 'anonymous'}")

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(cookie), token or "")
