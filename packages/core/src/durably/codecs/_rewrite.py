"""Re-encoding a whole store with the configured codecs, record by record, so a crash loses nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from durably.codecs._base import Codec, CodecStorage
from durably.storage import KeyNotFound, Storage


def rewrite_store(
    raw: Storage, codecs: Sequence[Codec], *, on_record: Callable[[str], None] | None = None
) -> int:
    """Read every record of ``raw`` through ``codecs`` and write it back encoded by them; returns how many.

    Each record is replaced atomically (``Storage.put``), and a record already rewritten reads
    back through the same codecs, so a run killed midway leaves every record readable and a
    second run finishes the job. Records the codecs refuse (tampered, an unknown key) stop the
    run with their error, before that record is touched. Run it while no workflow runs: a
    record written by a workflow between the read and the write here would be replaced.
    """
    coded = CodecStorage(raw, codecs)
    count = 0
    for key in list(raw.list("")):
        try:
            record = coded.get(key)
        except KeyNotFound:  # deleted since the listing (a workflow deleted meanwhile)
            continue
        coded.put(key, record)
        count += 1
        if on_record is not None:
            on_record(key)
    return count
