"""Codecs: every stored record signed or encrypted, refused before unpickling when it was altered."""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably import workflow
from durably._errors import CheckpointCorruptedError
from durably._plugins import get_registry
from durably._resolve import forget_storage, open_raw_storage, open_storage
from durably.codecs import CodecStorage, EncryptionCodec, KeyRing, RecordRefusedError, SigningCodec
from durably.testing import CodecContract

sys.path.insert(0, str(Path(__file__).parents[2] / "templates" / "codec"))
from durably_example_codec import ExampleCodec

SIGN_ENV = "DURABLY_SIGNING_KEY"
ENCRYPT_ENV = "DURABLY_ENCRYPTION_KEY"


def _secret(key_id: str, size: int = 32) -> bytes:
    return hashlib.sha256(f"test secret {key_id}".encode()).digest()[:size]


def _ring(key_ids: list[str]) -> KeyRing:
    return KeyRing(key_ids[0], {key_id: _secret(key_id) for key_id in key_ids})


class TestSigningCodec(CodecContract):
    def codec_with_keys(self, key_ids: list[str]) -> SigningCodec:
        return SigningCodec(_ring(key_ids))


class TestEncryptionCodec(CodecContract):
    def codec_with_keys(self, key_ids: list[str]) -> EncryptionCodec:
        return EncryptionCodec(_ring(key_ids), chunk_size=64 * 1024)


class TestTemplateCodec(CodecContract):
    def codec_with_keys(self, key_ids: list[str]) -> ExampleCodec:
        return ExampleCodec(_ring(key_ids))


def _encryption_keys(*key_ids: str) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(_secret(key_id)).decode()}" for key_id in key_ids)


@pytest.fixture
def codec_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Codec settings changed by a test are undone after it, and cached storages forgotten."""
    for name in ("DURABLY_CODECS", SIGN_ENV, ENCRYPT_ENV, "DURABLY_ALLOW_UNSIGNED_LEGACY"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    forget_storage()


@workflow.step
def add(a: int, b: int) -> int:
    return a + b


@workflow.step
def flaky(value: int, marker: str) -> int:
    if not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("first attempt fails")
    return value * 10


def _run_sum(storage_url: str, workflow_id: str = "w") -> Any:
    workflow.init(storage=storage_url, executor="local")
    return add.step(add.step(1, 2), 3).run(workflow_id=workflow_id)


def test_the_built_in_codecs_are_listed_as_plugins() -> None:
    registry = get_registry()
    info = next(info for info in registry.plugins if info.module == "durably.codecs._plugin")
    assert registry.provides(info) == {"codecs": ["encrypt", "sign"]}


def test_with_a_signing_key_every_stored_record_is_signed(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    assert _run_sum(storage_url) == 6
    raw = open_raw_storage(storage_url)
    keys = list(raw.list(""))
    assert keys and all(raw.get(key).startswith(b"DRBS\x01\x02k1") for key in keys)


def test_tampering_with_any_record_kind_is_refused_before_unpickling(
    storage_url: str, codec_env: Any
) -> None:
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    _run_sum(storage_url)
    raw = open_raw_storage(storage_url)
    signed = open_storage(storage_url)
    for key in raw.list(""):
        original = raw.get(key)
        for position in (0, len(original) // 2, len(original) - 1):
            tampered = bytearray(original)
            tampered[position] ^= 0x20
            raw.put(key, bytes(tampered))
            with pytest.raises(RecordRefusedError, match="tampered"):
                signed.get(key)
        raw.put(key, original)


def test_an_encrypted_store_cannot_be_read_without_its_key(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(ENCRYPT_ENV, _encryption_keys("e1"))
    assert _run_sum(storage_url, "secret-sum") == 6
    codec_env.delenv(ENCRYPT_ENV)
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(CheckpointCorruptedError):
        workflow.get_output("secret-sum")


def test_a_signed_store_is_refused_with_another_key_naming_the_key(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(SIGN_ENV, "writer:first secret")
    _run_sum(storage_url)
    codec_env.setenv(SIGN_ENV, "reader:another secret")
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(RecordRefusedError, match="'writer'"):
        workflow.get_output("w")


def test_a_workflow_resumes_after_a_key_rotation(storage_url: str, codec_env: Any, tmp_path: Path) -> None:
    codec_env.setenv(SIGN_ENV, "old:old secret")
    workflow.init(storage=storage_url, executor="local")
    marker = str(tmp_path / "failed-once")
    with pytest.raises(Exception, match="first attempt fails"):
        flaky.options(max_retries=0).step(add.step(1, 1), marker).run(workflow_id="rotated")
    codec_env.setenv(SIGN_ENV, "new:new secret,old:old secret")
    workflow.init(storage=storage_url, executor="local")
    assert workflow.resume("rotated") == 20
    assert open_raw_storage(storage_url).get("workflows/rotated/status").startswith(b"DRBS\x01\x03new")


def test_a_store_written_without_codecs_is_refused_once_a_key_is_set(
    storage_url: str, codec_env: Any
) -> None:
    _run_sum(storage_url, "legacy")
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(RecordRefusedError, match="allow_unsigned_legacy"):
        workflow.get_output("legacy")


def test_a_store_written_without_codecs_is_read_with_allow_unsigned_legacy(
    storage_url: str, codec_env: Any
) -> None:
    _run_sum(storage_url, "legacy")
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    workflow.init(storage=storage_url, executor="local", allow_unsigned_legacy=True)
    assert workflow.get_output("legacy") == 6


def test_init_refuses_an_unknown_codec_naming_the_known_ones(storage_url: str, codec_env: Any) -> None:
    with pytest.raises(ValueError, match=r"'rot13'.*encrypt, sign"):
        workflow.init(storage=storage_url, executor="local", codecs=["rot13"])


def test_init_refuses_the_sign_codec_without_a_key(storage_url: str, codec_env: Any) -> None:
    with pytest.raises(ValueError, match="DURABLY_SIGNING_KEY"):
        workflow.init(storage=storage_url, executor="local", codecs=["sign"])


def test_without_codecs_the_backend_is_used_directly(storage_url: str, codec_env: Any) -> None:
    assert not isinstance(open_storage(storage_url), CodecStorage)
