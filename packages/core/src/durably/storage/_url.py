"""Storage URLs for plugins: one parser and one canonical form, so every backend reads URLs alike.

The rules, the same for every backend that uses :func:`parse_storage_url`:

* the scheme is one the backend serves; the first one it lists is the canonical one;
* a URL never carries credentials: ``user:password@`` and options whose names look like secrets
  (``key``, ``secret``, ``token``, ``password``, ``credential``) are refused, without echoing them;
* the path is percent-decoded; as a key prefix it must be a valid storage key;
* every option is known to the backend and given once: an unknown or repeated option is refused,
  naming the option and the URL, so that a typo or a copy-paste slip does not go unnoticed;
* an empty value (``?region=``) means the option is not set;
* a flag is ``true/1/yes/on`` or ``false/0/no/off``; an endpoint is ``http(s)://host[:port]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from durably.storage._base import validate_key

_SECRET_WORDS = ("key", "secret", "token", "password", "credential")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
#: What a refusal of credentials says when the backend gives no hint of its own.
DEFAULT_CREDENTIALS_HINT = "take credentials from the environment or the service's own configuration files"


@dataclass(frozen=True)
class StorageURL:
    """A storage URL taken apart by :func:`parse_storage_url`; ``url`` is the text it came from."""

    url: str
    #: The scheme as written, in lower case (``gcs`` for ``gcs://...``).
    scheme: str
    #: The part after ``//`` (the bucket, for object stores); ``""`` when there is none.
    bucket: str
    #: The percent-decoded path, slashes included as written (``/a/b/``).
    path: str
    #: Each option given, with its value (possibly ``""``).
    options: Mapping[str, str]

    @property
    def prefix(self) -> str:
        """The path as a key prefix (``a/b``, or ``""``); ValueError when it is not a valid key."""
        prefix = self.path.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except ValueError as exc:
                raise ValueError(f"storage URL {self.url!r}: the prefix is not valid: {exc}") from None
        return prefix

    def option(self, name: str) -> str | None:
        """The value of option ``name``, or None when it is missing or empty."""
        return self.options.get(name) or None

    def flag(self, name: str, default: bool = False) -> bool:
        """Option ``name`` as a boolean (``true/1/yes/on``, ``false/0/no/off``); ``default`` when unset."""
        value = self.option(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"storage URL {self.url!r}: option {name}={value!r} must be true or false")

    def endpoint(self, name: str) -> str | None:
        """Option ``name`` as an ``http(s)://host[:port]`` URL, trailing ``/`` removed; None when unset."""
        value = self.option(name)
        if value is None:
            return None
        parts = urlsplit(value)  # a user or password in it was refused by parse_storage_url
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"storage URL {self.url!r}: option {name}={value!r} must be an http(s)://host[:port] URL"
            )
        return value.rstrip("/")

    def choice(self, name: str, choices: Sequence[str]) -> str | None:
        """Option ``name``, which must be one of ``choices``; None when unset."""
        value = self.option(name)
        if value is not None and value not in choices:
            raise ValueError(
                f"storage URL {self.url!r}: option {name}={value!r} must be one of {', '.join(choices)}"
            )
        return value


def parse_storage_url(
    url: str,
    *,
    schemes: Sequence[str],
    options: Sequence[str] = (),
    example: str,
    needs_bucket: bool = True,
    credentials_hint: str = DEFAULT_CREDENTIALS_HINT,
) -> StorageURL:
    """Take ``url`` apart by the rules in this module's docstring, or raise ValueError saying why.

    ``schemes`` are the schemes the backend serves, ``options`` the option names it knows, and
    ``example`` the shape of a good URL, shown in errors (``"s3://bucket/prefix"``). With
    ``needs_bucket`` false the URL must have nothing between ``//`` and the path
    (``example:///absolute/path``).
    """
    parts = urlsplit(url)
    secrets_words = ", ".join(_SECRET_WORDS)
    # Credentials first: every later message repeats the URL, and must not repeat a secret.
    if "@" in parts.netloc:
        raise ValueError(f"{parts.scheme}:// storage URLs must not carry credentials; {credentials_hint}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in query:
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise ValueError(
                f"{parts.scheme}:// storage URLs must not carry credentials (option {name!r} looks like "
                f"one: its name contains one of {secrets_words}); {credentials_hint}"
            )
        if "@" in urlsplit(value).netloc:
            raise ValueError(
                f"{parts.scheme}:// storage URLs must not carry credentials (option {name!r} is a URL "
                f"with a user or password); {credentials_hint}"
            )
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        served = " or ".join(f"{served}://" for served in schemes)
        raise ValueError(
            f"storage URL {url!r} is for another backend (this one serves {served}): use {example}"
        )
    if needs_bucket and not parts.netloc:
        raise ValueError(f"storage URL {url!r} names no bucket: use {example}")
    if not needs_bucket and parts.netloc:
        raise ValueError(
            f"storage URL {url!r} names a host ({parts.netloc!r}), which it must not: use {example}"
        )
    given: dict[str, str] = {}
    for name, value in query:
        if name not in options:
            known = ", ".join(options) if options else "none"
            raise ValueError(f"unknown option {name!r} in the storage URL {url!r}; known options: {known}")
        if name in given:
            raise ValueError(
                f"option {name!r} appears twice in the storage URL {url!r}; give each option once"
            )
        given[name] = value
    return StorageURL(url=url, scheme=scheme, bucket=parts.netloc, path=unquote(parts.path), options=given)


def format_storage_url(scheme: str, bucket: str, path: str, options: Mapping[str, str | None]) -> str:
    """The canonical text of a storage URL: path percent-encoded, options sorted, unset ones left out.

    ``path`` is a key prefix (``a/b``) or an absolute path (``/tmp/x``); ``:`` and ``/`` stay
    readable in option values, so an endpoint reads as one.
    """
    query = urlencode(sorted((name, value) for name, value in options.items() if value), safe=":/")
    quoted = quote(path, safe="/")
    if quoted and not quoted.startswith("/"):
        quoted = f"/{quoted}"
    return f"{scheme}://{bucket}{quoted}" + (f"?{query}" if query else "")
