"""``chaingate verify``: exit codes, the text table, the JSON record, and the signed VSA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore.models import Bundle
from verify_support import POLICY, SAN, Gate, Pushed, push_image

from chaingate.cli import run
from chaingate.errors import EXIT_DENIED, EXIT_USAGE
from chaingate.oci import media
from chaingate.policy.record import VSA_PREDICATE_TYPE
from chaingate.testing.ociregistry import OCIRegistry

pytestmark = [pytest.mark.sigstore, pytest.mark.registry]


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    for name in (
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pushed(gate: Gate, oci_registry: OCIRegistry) -> Pushed:
    return push_image(gate.registries, oci_registry.host)


def write_policy(gate: Gate, pushed: Pushed, text: str = POLICY) -> Path:
    gate.policy(pushed.host, base=text)
    return gate.tmp / "policy.yaml"


def test_allowed_image_exits_0_with_a_table_and_writes_the_record(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    gate.full(pushed)
    out = gate.tmp / "decision.json"
    code = run(
        [
            "verify",
            pushed.ref,
            "--policy",
            str(write_policy(gate, pushed)),
            "--trust-config",
            str(gate.trust),
            "-o",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert text.startswith(f"ALLOW  {pushed.ref}")
    assert "CLAUSE" in text and "RESULT" in text and "EXCEPTION" in text and "REASON" in text
    assert "signers          pass     -" in text and "evidence: sha256:" in text
    assert "decision record not signed: no signing identity" in text
    record = json.loads(out.read_text())
    assert record["verdict"] == "allow" and record["digest"] == pushed.digest
    assert record["vsa"]["predicateType"] == VSA_PREDICATE_TYPE
    assert record["vsa"]["predicate"]["verificationResult"] == "PASSED"
    assert record["vsaAttestation"]["signed"] is False


def test_denied_image_exits_1_and_lists_ignored_attachments(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    from verify_support import attach, statement

    attach(
        pushed.store,
        pushed.descriptor,
        gate.ids.lookalike.sign(statement(pushed.digest, "https://sigstore.dev/cosign/sign/v1", {})),
    )
    code = run(
        [
            "verify",
            pushed.tag_ref,
            "--policy",
            str(write_policy(gate, pushed)),
            "--trust-config",
            str(gate.trust),
        ]
    )
    text = capsys.readouterr().out
    assert code == EXIT_DENIED
    assert text.startswith("DENY  ")
    assert "requireDigest    fail" in text and "is a tag reference" in text
    assert "ignored attachments (1):" in text and "org/app-evil" in text


def test_json_output_and_warn_mode(gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(gate, pushed, POLICY.replace("mode: enforce", "mode: warn"))
    code = run(
        ["verify", pushed.ref, "--policy", str(policy), "--trust-config", str(gate.trust), "--format", "json"]
    )
    record = json.loads(capsys.readouterr().out)
    assert code == 0
    assert record["verdict"] == "deny" and record["mode"] == "warn" and record["allowed"] is True
    assert record["vsa"]["predicate"]["verificationResult"] == "FAILED"


def test_project_override_in_the_cli(gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(gate, pushed, POLICY + "projects: {{proj-a: {{mode: warn}}}}\n")
    base = [
        "verify",
        pushed.ref,
        "--policy",
        str(policy),
        "--trust-config",
        str(gate.trust),
        "--format",
        "json",
    ]
    assert run([*base, "--project", "proj-a"]) == 0
    assert run([*base, "--project", "proj-b"]) == EXIT_DENIED
    capsys.readouterr()


def test_malformed_policy_and_trust_config_exit_2(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = gate.tmp / "bad.yaml"
    bad.write_text("version: 1\nrequireDigests: true\nsigners: [{issuer: a, subject: b}]\n")
    with pytest.raises(SystemExit) as raised:
        run(["verify", pushed.ref, "--policy", str(bad), "--trust-config", str(gate.trust)])
    assert raised.value.code == EXIT_USAGE
    assert f"chaingate: error: {bad}:2: requireDigests: unknown key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        run(
            [
                "verify",
                pushed.ref,
                "--policy",
                str(write_policy(gate, pushed)),
                "--trust-config",
                str(gate.tmp / "none.json"),
            ]
        )
    assert raised.value.code == EXIT_USAGE
    assert "--trust-config" in capsys.readouterr().err


def test_decision_is_signed_and_attached_with_an_identity(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    gate.full(pushed)
    out = gate.tmp / "decision.json"
    argv = [
        "verify",
        pushed.ref,
        "--policy",
        str(write_policy(gate, pushed)),
        "--trust-config",
        str(gate.trust),
    ]
    code = run([*argv, "--identity-token", gate.token(), "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "decision signed and attached: VSA referrer sha256:" in text
    record = json.loads(out.read_text())
    attached = record["vsaAttestation"]
    assert attached["signed"] is True and attached["predicateType"] == VSA_PREDICATE_TYPE
    listing = pushed.store.referrers(pushed.digest, media.SIGSTORE_BUNDLE_V03)
    vsa = next(r for r in listing.referrers if r.descriptor.digest == attached["referrer"])
    with pushed.store.open_blob(vsa.manifest.layers[0]) as stream:
        bundle = Bundle.from_json(stream.read())
    from sigstore.verify.policy import Identity

    _, payload = gate.stack.verifier().verify_dsse(
        bundle, Identity(identity=SAN, issuer=gate.stack.issuer_url)
    )
    statement = json.loads(payload)
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["subject"][0]["digest"] == {"sha256": pushed.digest.split(":", 1)[1]}
    # The attached VSA is itself an attestation by a policy signer: a re-verification counts it too.
    assert run([*argv, "--no-sign"]) == 0
    assert "5 attestation(s)" in capsys.readouterr().out
