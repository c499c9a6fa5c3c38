"""``StorageContract``: the tests every Storage backend must pass, to subclass in a backend's test suite."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import random
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from durably.storage import KeyNotFound, Storage

T = TypeVar("T")

#: Keys that every backend must refuse with ValueError (see :func:`durably.storage.validate_key`).
INVALID_KEYS = ("", "/a", "a/", "a//b", "a/./b", "a/../b", "..", "a\nb", "a\x00b")

_HEADER = struct.Struct(">II")


def versioned_value(version: int, size: int) -> bytes:
    """A value whose every byte depends on ``version``, so a torn or mixed read cannot pass for it."""
    filler = bytes([version % 251]) * (size - _HEADER.size)
    return _HEADER.pack(version, size) + filler


def value_is_whole(value: bytes) -> bool:
    """Whether ``value`` is exactly one :func:`versioned_value`, neither cut short nor mixed."""
    if len(value) < _HEADER.size:
        return False
    version, size = _HEADER.unpack_from(value)
    return value == versioned_value(version, size)


def race_to_create(storage: Storage, key: str, *, contenders: int) -> list[bool]:
    """``put_if_absent(key, b"contender-N")`` from ``contenders`` threads released at once; their answers."""
    start = threading.Barrier(contenders)

    def contend(index: int) -> bool:
        start.wait()
        return storage.put_if_absent(key, f"contender-{index}".encode())

    with concurrent.futures.ThreadPoolExecutor(contenders) as pool:
        return list(pool.map(contend, range(contenders)))


def _open_and_exchange(factory: Callable[[str], Storage], url: str, read_key: str, write_key: str) -> bytes:
    """Run in another process: rebuild the storage from its URL, read one key and write another."""
    storage = factory(url)
    value = storage.get(read_key)
    storage.put(write_key, b"written by another process")
    return value


class StorageContract:
    """The behaviour of the Storage protocol, as tests a backend's test module inherits.

    Subclass it in a test module under a name pytest collects (``TestMyStorage``) and define
    one fixture, ``storage``, that yields a fresh, empty Storage of your backend for each test
    (give every test its own bucket prefix, folder or name)::

        from durably.testing import StorageContract

        class TestMyStorage(StorageContract):
            @pytest.fixture
            def storage(self, tmp_path):
                yield MyStorage(f"my://{tmp_path.name}")

    The class name does not start with ``Test``, so pytest never collects the contract on its own.

    Hooks a subclass may override:

    * :meth:`storage_factory` returns what builds a Storage from a URL (default: the class of
      ``storage``, called with the URL alone);
    * :meth:`run_in_another_process` runs a function in a different process (default: a
      ``multiprocessing`` spawn child); a backend whose data lives in a cluster (Ray, say) can
      run it on a worker of that cluster instead.

    The tests never store a key and keys below it (``a`` and ``a/b``) at the same time: a backend
    that keeps keys as files may refuse that, and the store above never does it.

    A backend that is process-local by design may remove a test by assigning ``None`` to its
    name in the subclass, with a comment saying why; every other backend must pass all of them.
    """

    #: Value sizes, in bytes, that the atomic-replace test writes over one another.
    replace_sizes: tuple[int, ...] = (1 << 20, 3 << 20, 2 << 20, 4 << 20)
    #: How many times the atomic-replace test replaces the value while readers read it.
    replace_rounds: int = 12
    #: How many keys the listing tests write (more than one S3 listing page of 1,000).
    many_keys: int = 2_500
    #: Size of the value in the large-value test.
    large_size: int = 20 * 1024 * 1024

    # ----------------------------------------------------------------- hooks

    def storage_factory(self, storage: Storage) -> Callable[[str], Storage]:
        """What builds a Storage of this backend from a URL; picklable, as it is sent to other processes."""
        factory: Callable[[str], Storage] = type(storage)  # type: ignore[assignment]
        return factory

    def run_in_another_process(self, function: Callable[..., T], *args: Any) -> T:
        """Call ``function(*args)`` in a freshly spawned process and return its result."""
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(function, *args).result()

    # ----------------------------------------------------------------- put and get

    def test_get_returns_the_bytes_put(self, storage: Storage) -> None:
        storage.put("wf/step/output", b"\x00value\xff")
        assert storage.get("wf/step/output") == b"\x00value\xff"

    def test_get_returns_a_bytes_object(self, storage: Storage) -> None:
        storage.put("k", b"abc")
        assert type(storage.get("k")) is bytes

    def test_empty_value_round_trips(self, storage: Storage) -> None:
        storage.put("empty", b"")
        assert storage.get("empty") == b""
        assert storage.exists("empty")

    def test_put_replaces_the_previous_value(self, storage: Storage) -> None:
        storage.put("k", b"first, and longer than the second")
        storage.put("k", b"second")
        assert storage.get("k") == b"second"

    def test_nested_keys_are_independent(self, storage: Storage) -> None:
        storage.put("a/b/c", b"deep")
        storage.put("a/b/d", b"sibling")
        storage.put("a/e", b"shallow")
        assert [storage.get(key) for key in ("a/b/c", "a/b/d", "a/e")] == [b"deep", b"sibling", b"shallow"]

    def test_large_value_round_trips_byte_exact(self, storage: Storage) -> None:
        value = random.Random(7).randbytes(self.large_size)
        storage.put("large", value)
        assert storage.get("large") == value

    def test_unicode_key_round_trips(self, storage: Storage) -> None:
        storage.put("wf/ünïcødé/步骤", "ünïcødé 步骤".encode())
        assert storage.get("wf/ünïcødé/步骤") == "ünïcødé 步骤".encode()

    def test_unicode_key_is_listed_as_written(self, storage: Storage) -> None:
        storage.put("wf/ünïcødé/步骤", b"x")
        assert list(storage.list("wf")) == ["wf/ünïcødé/步骤"]

    def test_keys_with_url_special_characters_round_trip(self, storage: Storage) -> None:
        keys = ["s/a b", "s/a+b", "s/a%20b", "s/a?b=c&d", "s/a#b", "s/~a;b,c"]
        for key in keys:
            storage.put(key, key.encode())
        assert [storage.get(key) for key in keys] == [key.encode() for key in keys]
        assert list(storage.list("s")) == sorted(keys)

    def test_readers_never_see_a_partial_or_mixed_value_during_replacement(self, storage: Storage) -> None:
        sizes = self.replace_sizes
        storage.put("hot", versioned_value(0, sizes[0]))
        written = threading.Event()
        reads = threading.Semaphore(0)
        torn: list[bytes] = []
        errors: list[BaseException] = []

        def read() -> None:
            while not written.is_set():
                try:
                    value = storage.get("hot")
                except BaseException as exc:
                    errors.append(exc)
                    return
                finally:
                    reads.release()
                if not value_is_whole(value):
                    torn.append(value[:64])

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        try:
            for version in range(1, self.replace_rounds + 1):
                # let the readers read between replacements; the timeout only guards against a hang
                assert reads.acquire(timeout=120), "the reader threads stopped reading"
                storage.put("hot", versioned_value(version, sizes[version % len(sizes)]))
        finally:
            written.set()
            for reader in readers:
                reader.join()
        assert errors == []
        assert torn == []
        assert storage.get("hot") == versioned_value(
            self.replace_rounds, sizes[self.replace_rounds % len(sizes)]
        )

    # ----------------------------------------------------------------- put_if_absent

    def test_put_if_absent_creates_a_missing_key(self, storage: Storage) -> None:
        assert storage.put_if_absent("lease", b"mine") is True
        assert storage.get("lease") == b"mine"

    def test_put_if_absent_keeps_an_existing_value(self, storage: Storage) -> None:
        storage.put("lease", b"theirs")
        assert storage.put_if_absent("lease", b"mine") is False
        assert storage.get("lease") == b"theirs"

    def test_put_if_absent_lets_exactly_one_of_eight_racing_threads_win(self, storage: Storage) -> None:
        results = race_to_create(storage, "race", contenders=8)
        assert results.count(True) == 1
        assert storage.get("race") == f"contender-{results.index(True)}".encode()

    def test_put_if_absent_creates_a_large_value_whole(self, storage: Storage) -> None:
        value = random.Random(11).randbytes(self.large_size)
        assert storage.put_if_absent("large", value) is True
        assert storage.get("large") == value

    def test_put_if_absent_refuses_a_large_value_over_an_existing_key(self, storage: Storage) -> None:
        storage.put("large", b"already here")
        assert storage.put_if_absent("large", random.Random(13).randbytes(self.large_size)) is False
        assert storage.get("large") == b"already here"

    # ----------------------------------------------------------------- exists

    def test_exists_is_true_for_a_stored_key(self, storage: Storage) -> None:
        storage.put("wf/here", b"1")
        assert storage.exists("wf/here") is True

    def test_exists_is_false_for_a_missing_key(self, storage: Storage) -> None:
        assert storage.exists("wf/nowhere") is False

    def test_exists_is_false_for_a_prefix_that_only_holds_other_keys(self, storage: Storage) -> None:
        storage.put("wf/step/output", b"1")
        assert storage.exists("wf/step") is False

    # ----------------------------------------------------------------- missing keys

    def test_get_of_a_missing_key_raises_key_not_found_naming_the_key(self, storage: Storage) -> None:
        with pytest.raises(KeyNotFound) as caught:
            storage.get("wf/missing/output")
        assert caught.value.key == "wf/missing/output"
        assert "wf/missing/output" in str(caught.value)

    def test_key_not_found_is_also_a_key_error(self, storage: Storage) -> None:
        with pytest.raises(KeyError):
            storage.get("missing")

    def test_get_of_a_prefix_that_only_holds_other_keys_raises_key_not_found(self, storage: Storage) -> None:
        storage.put("wf/step/output", b"1")
        with pytest.raises(KeyNotFound):
            storage.get("wf/step")

    def test_list_of_a_missing_prefix_is_empty(self, storage: Storage) -> None:
        storage.put("other/key", b"1")
        assert list(storage.list("missing")) == []

    def test_list_of_an_empty_storage_is_empty(self, storage: Storage) -> None:
        assert list(storage.list("")) == []

    def test_delete_prefix_of_a_missing_prefix_returns_zero(self, storage: Storage) -> None:
        storage.put("other/key", b"1")
        assert storage.delete_prefix("missing") == 0
        assert storage.get("other/key") == b"1"

    # ----------------------------------------------------------------- list

    def _put_many(self, storage: Storage, keys: list[str]) -> None:
        shuffled = list(keys)
        random.Random(3).shuffle(shuffled)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for future in [pool.submit(storage.put, key, key.encode()) for key in shuffled]:
                future.result()

    def test_list_returns_every_key_under_the_prefix_sorted(self, storage: Storage) -> None:
        # unpadded numbers and a nested folder, so that sorted text order differs from write order
        keys = [f"a/{i}" for i in range(self.many_keys - 100)] + [f"a/n/{i}" for i in range(100)]
        self._put_many(storage, keys)
        assert list(storage.list("a")) == sorted(keys)

    def test_list_leaves_out_keys_that_only_share_the_prefix_text(self, storage: Storage) -> None:
        storage.put("a/x", b"1")
        for sibling in ("ab/x", "abc", "a-b", "a.b", "b/a/x"):
            storage.put(sibling, b"2")
        assert list(storage.list("a")) == ["a/x"]

    def test_list_of_a_nested_prefix_returns_only_keys_below_it(self, storage: Storage) -> None:
        for key in ("wf/1/steps/a", "wf/1/steps/b/c", "wf/1/graph", "wf/10/steps/a"):
            storage.put(key, b"1")
        assert list(storage.list("wf/1/steps")) == ["wf/1/steps/a", "wf/1/steps/b/c"]

    def test_list_sorts_by_the_whole_key_not_folder_by_folder(self, storage: Storage) -> None:
        # '-' and '.' sort before '/', and '0' after it: a folder-by-folder walk gets this wrong
        keys = ["t/a0", "t/a/b", "t/a.b", "t/a-b"]
        for key in keys:
            storage.put(key, b"1")
        assert list(storage.list("t")) == ["t/a-b", "t/a.b", "t/a/b", "t/a0"]

    def test_list_of_the_empty_prefix_returns_every_key_sorted(self, storage: Storage) -> None:
        keys = ["b/2", "a/1", "c", "a/0/z"]
        for key in keys:
            storage.put(key, b"1")
        assert list(storage.list("")) == sorted(keys)

    # ----------------------------------------------------------------- delete_prefix

    def test_delete_prefix_removes_nested_keys_and_counts_them(self, storage: Storage) -> None:
        for key in ("a/1", "a/2/3", "a/2/4/5"):
            storage.put(key, b"1")
        assert storage.delete_prefix("a") == 3
        assert list(storage.list("a")) == []
        assert not storage.exists("a/2/3")

    def test_delete_prefix_leaves_keys_that_only_share_the_prefix_text(self, storage: Storage) -> None:
        storage.put("a/1", b"1")
        siblings = ["a-b", "a.b", "ab", "b/a"]
        for key in siblings:
            storage.put(key, b"2")
        storage.delete_prefix("a")
        assert list(storage.list("")) == sorted(siblings)

    def test_delete_prefix_removes_a_key_equal_to_the_prefix(self, storage: Storage) -> None:
        storage.put("wf/lease", b"1")
        assert storage.delete_prefix("wf/lease") == 1
        assert not storage.exists("wf/lease")

    def test_delete_prefix_removes_more_keys_than_one_listing_page(self, storage: Storage) -> None:
        keys = [f"bulk/{i}" for i in range(self.many_keys)]
        self._put_many(storage, keys)
        storage.put("bulkhead", b"sibling")
        assert storage.delete_prefix("bulk") == len(keys)
        assert list(storage.list("")) == ["bulkhead"]

    def test_a_deleted_key_can_be_created_again(self, storage: Storage) -> None:
        storage.put("wf/lease", b"old")
        storage.delete_prefix("wf")
        assert storage.put_if_absent("wf/lease", b"new") is True
        assert storage.get("wf/lease") == b"new"

    # ----------------------------------------------------------------- invalid keys

    @pytest.mark.parametrize("key", INVALID_KEYS)
    @pytest.mark.parametrize("method", ["put", "put_if_absent", "get", "exists", "delete_prefix"])
    def test_invalid_key_raises_value_error(self, storage: Storage, method: str, key: str) -> None:
        call: Callable[..., object] = getattr(storage, method)
        args = (key, b"x") if method.startswith("put") else (key,)
        with pytest.raises(ValueError):
            call(*args)

    @pytest.mark.parametrize("prefix", [key for key in INVALID_KEYS if key])
    def test_invalid_list_prefix_raises_value_error(self, storage: Storage, prefix: str) -> None:
        with pytest.raises(ValueError):
            list(storage.list(prefix))

    # ----------------------------------------------------------------- rebuilt from the URL

    def test_storage_rebuilt_from_its_url_sees_the_same_data(self, storage: Storage) -> None:
        storage.put("wf/shared", b"from the first object")
        other = self.storage_factory(storage)(storage.url)
        assert other.get("wf/shared") == b"from the first object"
        other.put("wf/back", b"from the second object")
        assert storage.get("wf/back") == b"from the second object"

    def test_storage_rebuilt_from_its_url_has_the_same_url(self, storage: Storage) -> None:
        assert self.storage_factory(storage)(storage.url).url == storage.url

    def test_unpickled_storage_sees_the_same_data(self, storage: Storage) -> None:
        storage.put("wf/shared", b"before pickling")  # so that any lazily built client exists
        copy = pickle.loads(pickle.dumps(storage))
        assert copy.get("wf/shared") == b"before pickling"

    def test_storage_rebuilt_in_another_process_shares_data_both_ways(self, storage: Storage) -> None:
        storage.put("wf/from-parent", b"written by this process")
        seen = self.run_in_another_process(
            _open_and_exchange, self.storage_factory(storage), storage.url, "wf/from-parent", "wf/from-child"
        )
        assert seen == b"written by this process"
        assert storage.get("wf/from-child") == b"written by another process"
