"""Reading codec keys from the environment or a key file: ``id:secret`` pairs, the first one writes."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyRing:
    """The key that writes new records (the first) and every key accepted for reading, by key id."""

    write_id: str
    keys: dict[str, bytes]

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)


def parse_key_ring(
    text: str, source: str, *, decode_base64: bool = False, length: int | None = None
) -> KeyRing:
    """Parse ``id:secret,id:secret`` (or one bare secret); ``source`` names where it came from in errors.

    A bare secret gets a key id derived from it (a hash prefix, which does not reveal it).
    """
    keys: dict[str, bytes] = {}
    write_id = ""
    for item in (part.strip() for part in text.replace("\n", ",").split(",")):
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep:
            key_id, secret = "", item
        raw = _decode(secret, source, decode_base64)
        if length is not None and len(raw) != length:
            raise ValueError(
                f"{source}: key {key_id or '(unnamed)'} is {len(raw)} bytes, {length} are needed; "
                "make one with `python -c "
                f'"import os,base64; print(base64.b64encode(os.urandom({length})).decode())"`'
            )
        key_id = key_id or hashlib.sha256(b"durably key id\0" + raw).hexdigest()[:12]
        if len(key_id.encode()) > 255 or not key_id.isprintable():
            raise ValueError(f"{source}: key id {key_id!r} must be printable and at most 255 bytes")
        keys.setdefault(key_id, raw)
        write_id = write_id or key_id
    if not keys:
        raise ValueError(f"{source} holds no key; give `id:secret` pairs separated by commas")
    return KeyRing(write_id, keys)


def _decode(secret: str, source: str, decode_base64: bool) -> bytes:
    if not secret:
        raise ValueError(f"{source}: a key is empty")
    if not decode_base64:
        return secret.encode()
    try:
        return base64.b64decode(secret, validate=True)
    except ValueError:
        raise ValueError(f"{source}: a key is not valid base64") from None


def key_ring_from_environment(
    variable: str, *, decode_base64: bool = False, length: int | None = None
) -> KeyRing | None:
    """The key ring in ``variable``, else in the file named by ``variable``_FILE, else None."""
    text = os.environ.get(variable)
    if text:
        return parse_key_ring(text, variable, decode_base64=decode_base64, length=length)
    path = os.environ.get(f"{variable}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                content = file.read()
        except OSError as exc:
            raise ValueError(f"{variable}_FILE={path!r} cannot be read: {exc}") from exc
        return parse_key_ring(
            content, f"{variable}_FILE ({path})", decode_base64=decode_base64, length=length
        )
    return None
