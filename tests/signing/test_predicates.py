"""``--type`` names as cosign spells them, predicates whose shape contradicts their type, SBOMs of another image.

These run offline: every refusal here must happen before a token, a trust root
or a registry is touched, so the CLI tests name an image that does not exist
and still see the predicate's error, not the image's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaingate.cli import run
from chaingate.provenance.statement import StatementError
from chaingate.signing.predicates import (
    load_predicate,
    predicate_type_for,
    sbom_image_digests,
)

V1 = "https://slsa.dev/provenance/v1"
V02 = "https://slsa.dev/provenance/v0.2"
V1_PREDICATE = {
    "buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://example.com/builder"}},
}
V02_PREDICATE = {
    "builder": {"id": "https://example.com/builder"},
    "buildType": "https://example.com/build/v1",
    "invocation": {"configSource": {}},
    "materials": [],
}
IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _write(tmp_path: Path, doc: Any, name: str = "predicate.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("slsaprovenance", V02),
        ("slsaprovenance02", V02),
        ("slsaprovenance1", V1),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("openvex", "https://openvex.dev/ns"),
        ("vsa", "https://slsa.dev/verification_summary/v1"),
        ("https://example.com/custom/v1", "https://example.com/custom/v1"),
    ],
)
def test_type_names_are_cosigns(name: str, uri: str) -> None:
    assert predicate_type_for(name) == uri


@pytest.mark.parametrize(
    ("doc", "type_name", "found"),
    [
        (V1_PREDICATE, "slsaprovenance", "buildDefinition, runDetails"),
        (V1_PREDICATE, "slsaprovenance02", "buildDefinition, runDetails"),
        (V1_PREDICATE, V02, "buildDefinition, runDetails"),
        (V02_PREDICATE, "slsaprovenance1", "builder, invocation, materials"),
    ],
)
def test_provenance_of_the_other_version_is_refused(
    doc: dict[str, Any], type_name: str, found: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(StatementError) as caught:
        load_predicate(path, predicate_type_for(type_name), type_name=type_name)
    message = caught.value.message
    assert message.startswith(f"--predicate {path}: the predicate is ")
    assert f"(it has {found}), but --type {type_name} means " in message
    assert caught.value.hint is not None and "slsaprovenance1 is v1" in caught.value.hint


def test_provenance_under_its_own_type_loads(tmp_path: Path) -> None:
    assert load_predicate(_write(tmp_path, V1_PREDICATE), V1).predicate == V1_PREDICATE
    assert load_predicate(_write(tmp_path, V02_PREDICATE), V02).predicate == V02_PREDICATE
    # Neither version's keys: nothing contradicts the type, so nothing is refused.
    assert load_predicate(_write(tmp_path, {"buildType": "x"}), V02).predicate == {"buildType": "x"}


def test_a_v1_statement_under_cosigns_slsaprovenance_says_which_name_to_use(tmp_path: Path) -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": "a" * 64}}],
        "predicateType": V1,
        "predicate": V1_PREDICATE,
    }
    path = _write(tmp_path, statement)
    with pytest.raises(StatementError) as caught:
        load_predicate(path, V02, type_name="slsaprovenance")
    assert f"differs from --type slsaprovenance ({V02})" in caught.value.message
    assert caught.value.hint is not None and "pass --type slsaprovenance1" in caught.value.hint


def test_the_cli_refuses_a_mislabelled_provenance_before_opening_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, V1_PREDICATE)
    with pytest.raises(SystemExit) as exc:
        run(["attest", "oci:/nonexistent/layout", "--predicate", str(path), "--type", "slsaprovenance"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first.startswith(f"chaingate: error: --predicate {path}: the predicate is {V1} provenance")
    assert "--type slsaprovenance means https://slsa.dev/provenance/v0.2" in first
    assert all(line.startswith("  hint: ") for line in rest)


def _bom(component: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []}
    if component is not None:
        doc["metadata"] = {"component": component}
    return doc


@pytest.mark.parametrize(
    ("component", "named"),
    [
        ({"type": "container", "name": "app", "version": IMAGE}, (IMAGE,)),  # chaingate, syft
        ({"type": "container", "name": "app", "hashes": [{"alg": "SHA-256", "content": "A" * 64}]}, (IMAGE,)),
        (
            {"type": "container", "name": "app", "purl": f"pkg:oci/app@sha256%3A{'a' * 64}?arch=amd64"},
            (IMAGE,),
        ),
        ({"type": "container", "name": "app", "purl": f"pkg:docker/org/app@{OTHER}"}, (OTHER,)),
        (
            {"type": "container", "name": "app", "version": IMAGE, "purl": f"pkg:oci/app@{OTHER}"},
            (IMAGE, OTHER),
        ),
        ({"type": "container", "name": "app", "version": "1.2.3"}, ()),
        ({"type": "application", "name": "app", "hashes": [{"alg": "SHA-1", "content": "a" * 40}]}, ()),
        (None, ()),
    ],
)
def test_the_digests_an_sbom_names(component: dict[str, Any] | None, named: tuple[str, ...]) -> None:
    assert sbom_image_digests(_bom(component)) == named


def test_an_sbom_of_another_image_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _bom({"type": "container", "name": "app", "version": OTHER}))
    loaded = load_predicate(path, "https://cyclonedx.org/bom")
    with pytest.raises(StatementError) as caught:
        loaded.check_subject(IMAGE)
    assert caught.value.message == (
        f"--predicate {path}: the SBOM describes {OTHER} (metadata.component), "
        f"not the image being attested ({IMAGE})"
    )
    # A digest that stands for the same image (a platform manifest of the index being attested) is fine.
    loaded.check_subject(IMAGE, lambda: (OTHER,))


def test_the_registry_is_asked_about_the_image_only_when_the_sbom_names_another_digest(
    tmp_path: Path,
) -> None:
    asked: list[str] = []

    def same_image() -> tuple[str, ...]:
        asked.append("asked")
        return ()

    for component in ({"name": "app", "version": IMAGE}, {"name": "app", "version": "1.0"}, None):
        load_predicate(_write(tmp_path, _bom(component)), "https://cyclonedx.org/bom").check_subject(
            IMAGE, same_image
        )
    assert asked == []
    # Not an SBOM: its metadata means nothing here.
    vuln = _write(tmp_path, {"metadata": {"component": {"version": OTHER}}})
    load_predicate(vuln, "https://cosign.sigstore.dev/attestation/vuln/v1").check_subject(IMAGE, same_image)
    assert asked == []


@pytest.mark.parametrize("predicate", ["null", "[]", '""'])
def test_a_statement_whose_predicate_is_not_an_object_is_refused(tmp_path: Path, predicate: str) -> None:
    digest = "sha256:" + "a" * 64
    text = (
        '{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x", "digest": {"sha256": "'
        + digest.split(":")[1]
        + '"}}], "predicateType": "https://example.com/p/v1", "predicate": '
        + predicate
        + "}"
    )
    path = tmp_path / "statement.json"
    path.write_text(text)
    with pytest.raises(StatementError, match="predicate must be a JSON object"):
        load_predicate(path, "https://example.com/p/v1")


def test_a_versioned_cyclonedx_type_gets_the_same_checks(tmp_path: Path) -> None:
    """The gate counts ``https://cyclonedx.org/bom/v1.6`` as an SBOM, so attest checks it as one."""
    path = _write(tmp_path, _bom({"type": "container", "name": "app", "version": OTHER}))
    loaded = load_predicate(path, "https://cyclonedx.org/bom/v1.6")
    with pytest.raises(StatementError, match="the SBOM describes"):
        loaded.check_subject(IMAGE)
