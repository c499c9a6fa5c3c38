"""Codecs: every stored record signed or encrypted, refused before unpickling when it was altered."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durably_test_helpers import run_child

from durably import workflow
from durably._errors import CheckpointCorruptedError
from durably._plugins import get_registry
from durably._resolve import forget_storage, open_raw_storage, open_storage
from durably.cli import main as durably_cli
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


@pytest.mark.workflow
def test_with_a_signing_key_every_stored_record_is_signed(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    assert _run_sum(storage_url) == 6
    raw = open_raw_storage(storage_url)
    keys = list(raw.list(""))
    assert keys and all(raw.get(key).startswith(b"DRBS\x01\x02k1") for key in keys)


@pytest.mark.workflow
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


@pytest.mark.workflow
def test_an_encrypted_store_cannot_be_read_without_its_key(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(ENCRYPT_ENV, _encryption_keys("e1"))
    assert _run_sum(storage_url, "secret-sum") == 6
    codec_env.delenv(ENCRYPT_ENV)
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(CheckpointCorruptedError):
        workflow.get_output("secret-sum")


@pytest.mark.workflow
def test_a_signed_store_is_refused_with_another_key_naming_the_key(storage_url: str, codec_env: Any) -> None:
    codec_env.setenv(SIGN_ENV, "writer:first secret")
    _run_sum(storage_url)
    codec_env.setenv(SIGN_ENV, "reader:another secret")
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(RecordRefusedError, match="'writer'"):
        workflow.get_output("w")


@pytest.mark.workflow
def test_a_workflow_resumes_after_a_key_rotation(storage_url: str, codec_env: Any, tmp_path: Path) -> None:
    codec_env.setenv(SIGN_ENV, "old:old secret")
    workflow.init(storage=storage_url, executor="local")
    marker = str(tmp_path / "failed-once")
    with pytest.raises(Exception, match="first attempt fails"):
        flaky.options(max_retries=0).step(add.step(1, 1), marker).run(workflow_id="rotated")
    codec_env.setenv(SIGN_ENV, "new:new secret,old:old secret")
    workflow.init(storage=storage_url, executor="local")
    assert workflow.resume("rotated") == 20
    raw = open_raw_storage(storage_url)
    newest_status = sorted(raw.list("workflows/rotated/statuses"))[-1]
    assert raw.get(newest_status).startswith(b"DRBS\x01\x03new")


@pytest.mark.workflow
def test_a_store_written_without_codecs_is_refused_once_a_key_is_set(
    storage_url: str, codec_env: Any
) -> None:
    _run_sum(storage_url, "legacy")
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    workflow.init(storage=storage_url, executor="local")
    with pytest.raises(RecordRefusedError, match="allow_unsigned_legacy"):
        workflow.get_output("legacy")


@pytest.mark.workflow
def test_a_store_written_without_codecs_is_read_with_allow_unsigned_legacy(
    storage_url: str, codec_env: Any
) -> None:
    _run_sum(storage_url, "legacy")
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    workflow.init(storage=storage_url, executor="local", allow_unsigned_legacy=True)
    assert workflow.get_output("legacy") == 6


@pytest.mark.workflow
def test_init_refuses_an_unknown_codec_naming_the_known_ones(storage_url: str, codec_env: Any) -> None:
    with pytest.raises(ValueError, match=r"'rot13'.*encrypt, sign"):
        workflow.init(storage=storage_url, executor="local", codecs=["rot13"])


@pytest.mark.workflow
def test_init_refuses_the_sign_codec_without_a_key(storage_url: str, codec_env: Any) -> None:
    with pytest.raises(ValueError, match="DURABLY_SIGNING_KEY"):
        workflow.init(storage=storage_url, executor="local", codecs=["sign"])


@pytest.mark.workflow
def test_without_codecs_the_backend_is_used_directly(storage_url: str, codec_env: Any) -> None:
    assert not isinstance(open_storage(storage_url), CodecStorage)


REWRITE_CHILD = """
import os, signal
from durably._resolve import build_codecs, open_raw_storage
from durably.codecs import rewrite_store

done = []

def die_after_three(key):
    done.append(key)
    if len(done) == 3:
        os.kill(os.getpid(), signal.SIGKILL)

rewrite_store(open_raw_storage(STORAGE), build_codecs(["sign"]), on_record=die_after_three)
"""


def _signed_keys(storage_url: str) -> tuple[int, int]:
    raw = open_raw_storage(storage_url)
    keys = list(raw.list(""))
    return sum(raw.get(key).startswith(b"DRBS") for key in keys), len(keys)


@pytest.mark.workflow
def test_codecs_rewrite_signs_a_store_written_without_codecs(storage_url: str, codec_env: Any) -> None:
    _run_sum(storage_url, "legacy")
    codec_env.setenv(SIGN_ENV, "k1:first secret")
    assert durably_cli(["codecs", "rewrite", "--storage", storage_url, "--allow-unsigned-legacy"]) == 0
    codec_env.delenv("DURABLY_ALLOW_UNSIGNED_LEGACY")
    signed, total = _signed_keys(storage_url)
    assert signed == total
    workflow.init(storage=storage_url, executor="local")
    assert workflow.get_output("legacy") == 6


@pytest.mark.workflow
@pytest.mark.needs_persistent_storage
def test_codecs_rewrite_killed_midway_is_finished_by_a_second_run(storage_url: str, codec_env: Any) -> None:
    _run_sum(storage_url, "legacy")
    env = {SIGN_ENV: "k1:first secret", "DURABLY_ALLOW_UNSIGNED_LEGACY": "1"}
    child = run_child(REWRITE_CHILD.replace("STORAGE", repr(storage_url)), env=env)
    assert child.returncode == -signal.SIGKILL, child.stderr
    signed, total = _signed_keys(storage_url)
    assert signed == 3 < total
    for name, value in env.items():
        codec_env.setenv(name, value)
    assert durably_cli(["codecs", "rewrite", "--storage", storage_url, "--allow-unsigned-legacy"]) == 0
    codec_env.delenv("DURABLY_ALLOW_UNSIGNED_LEGACY")
    assert _signed_keys(storage_url) == (total, total)
    workflow.init(storage=storage_url, executor="local")
    assert workflow.get_output("legacy") == 6


def test_codecs_rewrite_without_a_configured_codec_says_what_to_set(
    storage_url: str, codec_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert durably_cli(["codecs", "rewrite", "--storage", storage_url]) == 2
    assert "DURABLY_SIGNING_KEY" in capsys.readouterr().err


def _peak_extra(action: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = action()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_encrypting_a_large_record_needs_its_ciphertext_and_one_chunk_not_a_third_copy() -> None:
    codec = EncryptionCodec(_ring(["e1"]))
    record = os.urandom(64 * 1024 * 1024)
    _, extra = _peak_extra(lambda: codec.encode("wf/objects/h", record))
    assert extra < len(record) + 4 * 1024 * 1024


def test_decrypting_a_large_record_needs_its_plaintext_and_one_chunk_not_a_third_copy() -> None:
    codec = EncryptionCodec(_ring(["e1"]))
    stored = bytes(codec.encode("wf/objects/h", os.urandom(64 * 1024 * 1024)))
    _, extra = _peak_extra(lambda: codec.decode("wf/objects/h", stored))
    assert extra < len(stored) + 4 * 1024 * 1024


RAY_CHILD = """
from durably import workflow

workflow.init(storage=STORAGE, executor="ray", ray_address="local")

@workflow.step
def double(x):
    return 2 * x

print(double.step(double.step(5)).run(workflow_id="on-ray"))
"""


# Not marked workflow (so it runs once, in the primary Python's whole suite): its storage is a file
# path whatever the backend under test, so the backends sessions re-ran the same thing, and it
# starts a cluster of its own, about 25 s of CI per re-run; the secondary Pythons' subset still
# runs workflows on Ray through the other tests there that need a cluster.
def test_ray_workers_and_the_engine_actor_sign_with_the_key_of_the_environment(
    tmp_path: Path, codec_env: Any
) -> None:
    storage_url = str(tmp_path / "storage")
    env = {SIGN_ENV: "cluster:cluster secret", "RAY_ADDRESS": ""}  # a fresh cluster inherits the key
    child = run_child(RAY_CHILD.replace("STORAGE", repr(storage_url)), env=env)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip().splitlines()[-1] == "20"
    raw = open_raw_storage(storage_url)
    keys = list(raw.list("workflows/on-ray/steps"))
    assert keys and all(raw.get(key).startswith(b"DRBS\x01\x07cluster") for key in keys)


class _Planted:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.mark.workflow
def test_durably_list_refuses_a_planted_status_record_without_running_it(
    storage_url: str, codec_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    from durably import _codec

    codec_env.setenv(SIGN_ENV, "k1:first secret")
    _run_sum(storage_url, "victim")
    proof = tmp_path / "code-ran"
    planted = _codec.encode_record(
        _codec.RecordKind.STATUS, {"status": "FAILED"}, pickle.dumps(_Planted(str(proof)))
    )
    raw = open_raw_storage(storage_url)
    newest_status = sorted(raw.list("workflows/victim/statuses"))[-1]
    raw.put(newest_status, planted)
    assert durably_cli(["list", "--storage", storage_url]) == 1
    assert "tampered" in capsys.readouterr().err
    assert not proof.exists()
