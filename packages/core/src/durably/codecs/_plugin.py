"""Registers the built-in codecs (``sign``, ``encrypt``) through the ordinary codec hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durably.codecs._base import Codec
from durably.codecs._encryption import EncryptionCodec
from durably.codecs._signing import SigningCodec
from durably.hookspecs import hookimpl


@hookimpl
def durably_codecs() -> Mapping[str, Callable[[], Codec]]:
    return {"sign": SigningCodec.from_environment, "encrypt": EncryptionCodec.from_environment}
