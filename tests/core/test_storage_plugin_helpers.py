"""The helpers storage plugins share: one way to read a URL, one way to settle a lost create answer."""

from __future__ import annotations

import pytest

from durably.storage import Creation, StorageURL, format_storage_url, parse_storage_url

OPTIONS = ("region", "create_bucket", "endpoint")


def _parse(url: str) -> StorageURL:
    return parse_storage_url(url, schemes=("my", "mine"), options=OPTIONS, example="my://bucket/prefix")


def test_a_url_is_taken_apart_into_bucket_prefix_and_options() -> None:
    parsed = _parse("mine://bucket/a/b/?region=eu")
    assert (parsed.scheme, parsed.bucket, parsed.prefix, dict(parsed.options)) == (
        "mine",
        "bucket",
        "a/b",
        {"region": "eu"},
    )


@pytest.mark.parametrize("url", ["my://bucket/p?region=a&region=b", "my://bucket/p?region=a&region=a"])
def test_a_repeated_option_is_refused_naming_it_and_the_url(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        _parse(url)
    assert "'region'" in str(caught.value)
    assert url in str(caught.value)


def test_an_unknown_option_is_refused_naming_it_the_url_and_the_known_ones() -> None:
    with pytest.raises(ValueError) as caught:
        _parse("my://bucket/p?regoin=eu")
    assert "'regoin'" in str(caught.value)
    assert "my://bucket/p?regoin=eu" in str(caught.value)
    assert "region, create_bucket, endpoint" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "my://someone:TOPSECRET@bucket/p",
        "my://bucket/p?secret_key=TOPSECRET",
        "my://bucket/p?endpoint=http://someone:TOPSECRET@host:9000",
        "my://bucket/p?endpoint=http://someone:TOPSECRET@host:9000&colour=blue",
    ],
)
def test_credentials_are_refused_without_being_repeated(url: str) -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        _parse(url).endpoint("endpoint")
    assert "TOPSECRET" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("other://bucket/p", "my://bucket/prefix"),
        ("my:///p", "names no bucket"),
        ("my://bucket/a/../b", "'..'"),
        ("my://bucket/p?create_bucket=maybe", "true or false"),
        ("my://bucket/p?endpoint=localhost:9000", "http(s)://host[:port]"),
    ],
)
def test_a_bad_url_is_refused_saying_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parsed = _parse(url)
        (parsed.prefix, parsed.flag("create_bucket"), parsed.endpoint("endpoint"))
    assert complaint in str(caught.value)


def test_an_empty_option_is_unset() -> None:
    parsed = _parse("my://bucket?region=&create_bucket=")
    assert (parsed.option("region"), parsed.flag("create_bucket", default=True)) == (None, True)


def test_a_url_without_a_bucket_names_a_path_when_the_backend_says_so() -> None:
    parsed = parse_storage_url("my:///tmp/a%20b", schemes=("my",), example="my:///path", needs_bucket=False)
    assert parsed.path == "/tmp/a b"


def test_the_canonical_form_encodes_the_prefix_and_sorts_the_set_options() -> None:
    url = format_storage_url("my", "bucket", "a b/c", {"region": "eu", "endpoint": "http://h:1", "x": None})
    assert url == "my://bucket/a%20b/c?endpoint=http://h:1&region=eu"
    assert _parse(url).prefix == "a b/c"


def test_a_refused_create_without_a_failed_attempt_did_not_create_and_reads_nothing() -> None:
    reads: list[str] = []

    def read_token() -> str | None:
        reads.append("read")
        return None

    assert Creation().created_it(read_token) is False
    assert reads == []


def test_a_refused_create_after_a_transient_failure_created_when_the_token_is_its_own() -> None:
    creation = Creation()
    with pytest.raises(ConnectionError):
        creation.attempt(_raise_connection_error, lambda exc: isinstance(exc, ConnectionError))
    assert creation.created_it(lambda: creation.token) is True
    assert creation.created_it(lambda: Creation().token) is False
    assert creation.created_it(lambda: None) is False


def test_a_permanent_failure_does_not_count_as_possibly_applied() -> None:
    creation = Creation()
    with pytest.raises(PermissionError):
        creation.attempt(_raise_permission_error, lambda exc: isinstance(exc, ConnectionError))
    assert creation.maybe_applied is False


def _raise_connection_error() -> None:
    raise ConnectionError("reset")


def _raise_permission_error() -> None:
    raise PermissionError("denied")
