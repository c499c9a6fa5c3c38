"""Codecs: what durably does to every record between the store and storage (signing, encryption).

Which codecs run is configuration, rebuilt in every process like storage is: ``DURABLY_CODECS``
(names, comma-separated; ``workflow.init(codecs=[...])`` sets it), else ``sign`` when
``DURABLY_SIGNING_KEY`` is set and ``encrypt`` when ``DURABLY_ENCRYPTION_KEY`` is set. Keys
are read from the environment (or key files) by each process; they are never stored or pickled.
"""

from __future__ import annotations

from durably.codecs._base import Codec, CodecStorage, RecordRefusedError
from durably.codecs._encryption import ENCRYPTION_KEY_ENV, EncryptionCodec
from durably.codecs._keys import KeyRing, parse_key_ring
from durably.codecs._rewrite import rewrite_store
from durably.codecs._signing import LEGACY_ENV, SIGNING_KEY_ENV, SigningCodec, checks_signatures

__all__ = [
    "ENCRYPTION_KEY_ENV",
    "LEGACY_ENV",
    "SIGNING_KEY_ENV",
    "Codec",
    "CodecStorage",
    "EncryptionCodec",
    "KeyRing",
    "RecordRefusedError",
    "SigningCodec",
    "checks_signatures",
    "parse_key_ring",
    "rewrite_store",
]
