"""``CodecContract``: the tests every codec must pass, to subclass in a codec plugin's test suite."""

from __future__ import annotations

import os
import pathlib
import pickle
import uuid
from typing import Any

import pytest

from durably import _codec
from durably._codec import RecordKind
from durably._store import WorkflowStore
from durably.codecs import Codec, CodecStorage, RecordRefusedError
from durably.storage._memory import MemoryStorage


class _Planted:
    """What an attacker plants: unpickling it creates the file ``path`` (the proof of code execution)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


class CodecContract:
    """Subclass under a name pytest collects and implement :meth:`codec_with_keys`::

        class TestMyCodec(CodecContract):
            def codec_with_keys(self, key_ids):
                return MyCodec({key_id: secret_for(key_id) for key_id in key_ids}, writes_with=key_ids[0])

    ``codec_with_keys(["a", "b"])`` must write with key ``a`` and read records written with
    ``a`` or ``b``; the secret of a key id must be the same on every call.
    """

    #: Size of the payload of the large-record test.
    large_size: int = 5 * 1024 * 1024 + 7

    def codec_with_keys(self, key_ids: list[str]) -> Codec:
        raise NotImplementedError("a CodecContract subclass builds its codec in codec_with_keys")

    # ----------------------------------------------------------------- round trips

    def test_a_record_comes_back_as_it_was_written(self) -> None:
        codec = self.codec_with_keys(["a"])
        record = _codec.encode_record(RecordKind.STEP, {"x": 1}, pickle.dumps([1, "two"]))
        assert bytes(codec.decode("wf/steps/s", codec.encode("wf/steps/s", record))) == record

    def test_an_empty_value_comes_back_empty(self) -> None:
        codec = self.codec_with_keys(["a"])
        assert bytes(codec.decode("index/wf", codec.encode("index/wf", b""))) == b""

    def test_a_large_value_comes_back_whole(self) -> None:
        codec = self.codec_with_keys(["a"])
        value = os.urandom(self.large_size)
        assert bytes(codec.decode("wf/objects/h", codec.encode("wf/objects/h", value))) == value

    def test_a_step_output_round_trips_through_a_workflow_store(self) -> None:
        store = WorkflowStore(
            # A store of its own: named memory stores are shared, and a step output is written once.
            CodecStorage(
                MemoryStorage(f"memory://contract-{uuid.uuid4().hex}"), [self.codec_with_keys(["a"])]
            ),
            "wf",
        )
        store.save_step_output("s", {"answer": 42}, {"name": "s"})
        assert store.load_step_output("s") == {"answer": 42}

    # ----------------------------------------------------------------- tampering

    def test_changing_any_single_byte_is_refused(self) -> None:
        codec = self.codec_with_keys(["a"])
        stored = bytes(
            codec.encode("wf/status", _codec.encode_record(RecordKind.STATUS, {"status": "RUNNING"}))
        )
        for position in range(len(stored)):
            tampered = bytearray(stored)
            tampered[position] ^= 0x01
            with pytest.raises(RecordRefusedError):
                codec.decode("wf/status", bytes(tampered))

    def test_truncating_a_record_is_refused(self) -> None:
        codec = self.codec_with_keys(["a"])
        stored = bytes(codec.encode("wf/graph", b"a record of some length"))
        for length in range(len(stored)):
            with pytest.raises(RecordRefusedError):
                codec.decode("wf/graph", stored[:length])

    def test_a_record_copied_to_another_key_is_refused(self) -> None:
        codec = self.codec_with_keys(["a"])
        stored = codec.encode("wf/steps/one", b"the output of step one")
        with pytest.raises(RecordRefusedError):
            codec.decode("wf/steps/two", stored)

    def test_a_planted_pickle_is_refused_before_it_is_unpickled(self, tmp_path: pathlib.Path) -> None:
        storage = MemoryStorage("memory://contract")
        store = WorkflowStore(CodecStorage(storage, [self.codec_with_keys(["a"])]), "wf")
        store.save_step_output("s", "honest output", {"name": "s"})
        proof = tmp_path / "code-ran"
        planted = _codec.encode_record(RecordKind.STEP, {"name": "s"}, pickle.dumps(_Planted(str(proof))))
        storage.put(store.key("steps", "s"), planted)  # what someone with write access to storage does
        with pytest.raises(RecordRefusedError, match="tampered"):
            store.load_step_output("s")
        assert not proof.exists()

    def test_a_planted_pickle_spliced_into_a_codec_record_is_refused(self, tmp_path: pathlib.Path) -> None:
        codec = self.codec_with_keys(["a"])
        proof = tmp_path / "code-ran"
        honest = bytes(codec.encode("wf/events/s", b"x" * 64))
        evil = pickle.dumps(_Planted(str(proof)))
        spliced = honest[: len(honest) - len(evil)] + evil if len(evil) < len(honest) else evil
        with pytest.raises(RecordRefusedError):
            codec.decode("wf/events/s", spliced)
        assert not proof.exists()

    # ----------------------------------------------------------------- keys

    def test_a_record_written_with_another_key_is_refused_naming_the_key(self) -> None:
        stored = self.codec_with_keys(["writer"]).encode("wf/meta", b"metadata")
        with pytest.raises(RecordRefusedError, match="writer"):
            self.codec_with_keys(["reader"]).decode("wf/meta", stored)

    def test_after_a_rotation_old_records_are_read_and_new_ones_use_the_new_key(self) -> None:
        old_record = self.codec_with_keys(["old"]).encode("wf/graph", b"written before the rotation")
        rotated = self.codec_with_keys(["new", "old"])
        assert bytes(rotated.decode("wf/graph", old_record)) == b"written before the rotation"
        new_record = rotated.encode("wf/graph", b"written after the rotation")
        assert (
            bytes(self.codec_with_keys(["new"]).decode("wf/graph", new_record))
            == b"written after the rotation"
        )
        with pytest.raises(RecordRefusedError, match="new"):
            self.codec_with_keys(["old"]).decode("wf/graph", new_record)

    def test_a_record_without_the_codec_is_refused(self) -> None:
        plain = _codec.encode_record(RecordKind.META, {"created_at": 0})
        with pytest.raises(RecordRefusedError):
            self.codec_with_keys(["a"]).decode("wf/meta", plain)
