from __future__ import annotations

from pathlib import Path

import pytest

from chaingate.oci.errors import InvalidReference
from chaingate.oci.reference import (
    ArchiveReference,
    LayoutReference,
    Reference,
    is_loopback,
    parse_image_reference,
    parse_reference,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", Reference("docker.io", "library/alpine", "latest")),
        ("alpine:3.19", Reference("docker.io", "library/alpine", "3.19")),
        ("docker.io/alpine", Reference("docker.io", "library/alpine", "latest")),
        ("index.docker.io/org/app:1", Reference("docker.io", "org/app", "1")),
        ("registry-1.docker.io/library/nginx", Reference("docker.io", "library/nginx", "latest")),
        ("org/app", Reference("docker.io", "org/app", "latest")),
        ("us.icr.io/team/app:v1", Reference("us.icr.io", "team/app", "v1")),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("localhost:5000/a/b:v1", Reference("localhost:5000", "a/b", "v1")),
        (f"localhost:5000/a/b:v1@{D}", Reference("localhost:5000", "a/b", "v1", D)),
        (f"ghcr.io/org/app@{D}", Reference("ghcr.io", "org/app", None, D)),
        ("[::1]:5000/app", Reference("[::1]:5000", "app", "latest")),
        ("[::1]/app:t", Reference("[::1]", "app", "t")),
        ("[fe80::1]:443/x/y", Reference("[fe80::1]:443", "x/y", "latest")),
        ("127.0.0.1:5000/app__x/y-z.w", Reference("127.0.0.1:5000", "app__x/y-z.w", "latest")),
        ("docker://quay.io/org/app:v2", Reference("quay.io", "org/app", "v2")),
    ],
)
def test_parse_normalises_like_docker(text: str, expected: Reference) -> None:
    assert parse_image_reference(text) == expected


def test_string_form_round_trips() -> None:
    ref = parse_reference(f"localhost:5000/a/b:v1@{D}")
    assert str(ref) == f"localhost:5000/a/b:v1@{D}"
    assert parse_reference(str(ref)) == ref
    assert ref.target == D  # the digest wins over the tag
    assert ref.name == "localhost:5000/a/b"
    assert str(ref.by_digest(D)) == f"localhost:5000/a/b@{D}"


def test_docker_hub_api_host() -> None:
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("quay.io/x").api_host == "quay.io"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " alpine",
        "UPPER/x",
        "a//b",
        "x:",
        "x@sha256:zz",
        f"x@sha256:{'a' * 63}",
        "x@md5:" + "a" * 32,
        "http://x/y",
        "x:bad tag",
        "x:" + "t" * 129,
        "[zz::1]:5000/app",
        "-bad.example.com/app",
        "a/" + "b" * 300,
        "host.example.com/",
    ],
)
def test_malformed_references_are_clear_errors(text: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse_image_reference(text)
    assert repr(text)[1:-1][:20] in exc.value.message or text == ""
    assert "\n" not in exc.value.message


def test_layout_and_archive_references() -> None:
    assert parse_image_reference("oci:/tmp/x:latest") == LayoutReference(Path("/tmp/x"), "latest")
    assert parse_image_reference("oci:/tmp/x") == LayoutReference(Path("/tmp/x"))
    assert parse_image_reference("oci:rel/dir") == LayoutReference(Path("rel/dir"))
    assert parse_image_reference(f"oci:d@{D}") == LayoutReference(Path("d"), None, D)
    assert parse_image_reference("docker-archive:/tmp/a.tar") == ArchiveReference(Path("/tmp/a.tar"))
    assert str(LayoutReference(Path("/tmp/x"), "v1")) == "oci:/tmp/x:v1"
    with pytest.raises(InvalidReference):
        parse_image_reference("oci:")
    with pytest.raises(InvalidReference):
        parse_image_reference("docker-archive:")
    with pytest.raises(InvalidReference):
        parse_image_reference("oci:/tmp/x@sha256:nothex")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("registry.localhost:80", True),
        ("10.0.0.1:5000", False),
        ("us.icr.io", False),
        ("[fe80::1]:5000", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
