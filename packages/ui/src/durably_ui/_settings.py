"""What one dashboard serves and who may change things: storage, executor, token, output policy."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field

#: Environment variable holding the bearer token that mutating requests must present.
TOKEN_ENV = "DURABLY_UI_TOKEN"
#: The default port: next to, not on, the Ray dashboard's 8265.
DEFAULT_PORT = 8275
DEFAULT_HOST = "127.0.0.1"
#: The most characters of an output preview the dashboard ever returns.
MAX_PREVIEW_CHARS = 10_000


@dataclass(frozen=True)
class Settings:
    """One dashboard's configuration (see :func:`durably_ui.create_app`)."""

    storage_url: str
    token: str
    executor: str = "ray"
    show_outputs: bool = False
    #: The storage's records are signed and checked before unpickling (``Inspector.signed``).
    signed: bool = False
    token_generated: bool = field(default=False, compare=False)

    def derived(self, purpose: str) -> str:
        """A value only the token's holder can compute: the session cookie and the CSRF field."""
        return hmac.new(self.token.encode(), f"durably-ui:{purpose}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    def token_matches_derived(self, presented: str, purpose: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.derived(purpose).encode())


def resolve_token(token: str | None) -> tuple[str, bool]:
    """The token to require: the argument, else $DURABLY_UI_TOKEN, else a new random one (generated=True)."""
    chosen = token if token is not None else os.environ.get(TOKEN_ENV)
    if chosen is not None:
        if len(chosen) < 16:
            raise ValueError(
                f"the dashboard token must be at least 16 characters, got {len(chosen)}; "
                f"set {TOKEN_ENV} to a long random value (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        return chosen, False
    return secrets.token_urlsafe(32), True


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address (or name) that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token_given: bool) -> None:
    """Refuse to serve on a non-loopback address unless the operator chose a token."""
    if not is_loopback(host) and not token_given:
        raise ValueError(
            f"refusing to listen on {host!r} (reachable from other machines) without a token: set "
            f"{TOKEN_ENV} to a long random secret, or listen on 127.0.0.1 (the default)"
        )


def outputs_allowed(settings: Settings) -> bool:
    """Whether the dashboard may unpickle stored outputs and actor state to preview them.

    Unpickling runs code chosen by whoever can write the storage, so it is allowed when the
    operator asked for it (``--show-outputs``), or when the store is signed: the ``sign`` codec
    refuses a forged or altered record before anything is unpickled (docs/security.md).
    """
    return settings.show_outputs or settings.signed
