"""Who may use the station's API, and under which name their actions are recorded.

The service makes one token at its first start and keeps it in the data directory, readable by its owner only
(``api-token``, mode 0600): whoever can read the runs on disk may also act on them, nobody else. A lab that wants
each operator's name on their actions lists users in station.yaml (``api: users:``) with the SHA-256 of a token
(`station token new NAME` prints both), so no usable secret is ever written into a config file that is shared or
committed. Tokens are compared in constant time.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKEN_FILE = "api-token"
#: bytes of randomness in a token (URL-safe base64, 43 characters)
TOKEN_BYTES = 32


class TokenError(Exception):
    """The token file cannot be made or read; the message names the file and the fix."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What station.yaml stores for a named user: the token's SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def owner_name() -> str:
    """The name the owner token's actions are recorded under: the account the service runs as."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a bare container): still a name to record
        return "owner"


def token_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def read_token(data_dir: str | Path) -> str | None:
    """The owner token, or None when no service has made one yet (or it cannot be read by this user)."""
    try:
        text = token_path(data_dir).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def ensure_token(data_dir: str | Path) -> str:
    """The owner token, made on first use: created with mode 0600 in one step, so it is never readable by others,
    not even for a moment; a file others can read is refused (a token anyone may have seen is no secret)."""
    path = token_path(data_dir)
    existing = read_token(data_dir)
    if existing is not None:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise TokenError(f"{path} can be read by other users; `chmod 600 {path}` (or delete it to make a new "
                             f"token) and start again")
        return existing
    token = new_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: theirs is the token
        again = read_token(data_dir)
        if again is None:
            raise TokenError(f"{path} exists but cannot be read; delete it and start again") from None
        return again
    except OSError as exc:
        raise TokenError(f"cannot create the API token {path}: {exc.strerror}; check the data directory's "
                         f"permissions") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


@dataclass(frozen=True)
class Tokens:
    """Every accepted token, by the name its actions are recorded under."""

    owner: str
    owner_token: str
    users: dict[str, str]
    """name -> SHA-256 hex of that user's token (station.yaml)."""

    def who(self, presented: str | None) -> str | None:
        """The name behind ``presented``, or None when it is not a valid token."""
        if not presented:
            return None
        if hmac.compare_digest(presented.encode(), self.owner_token.encode()):
            return self.owner
        digest = token_hash(presented)
        found = None
        for name, expected in self.users.items():  # every entry compared: the time says nothing about which
            if hmac.compare_digest(digest, expected.lower()):
                found = found or name
        return found


def load_tokens(data_dir: str | Path, users: dict[str, str] | None = None) -> Tokens:
    with contextlib.suppress(OSError):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    return Tokens(owner_name(), ensure_token(data_dir), dict(users or {}))
