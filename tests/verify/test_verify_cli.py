"""``chaingate verify``: exit codes, the text table, the JSON record, and the signed VSA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore.models import Bundle

from chaingate.cli import run
from chaingate.errors import EXIT_DENIED, EXIT_USAGE
from chaingate.oci import media
from chaingate.predicate_types import SLSA_VSA_V1 as VSA_PREDICATE_TYPE
from chaingate_testing.images import BuiltIndex
from chaingate_testing.ociregistry import OCIRegistry
from support.gate import POLICY, SAN, Gate, Pushed, push_image

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
    from support.gate import attach, statement

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
    # The attached VSA is signed by a policy signer, but it is the gate's own record: it never counts.
    assert run([*argv, "--no-sign"]) == 0
    again = capsys.readouterr().out
    assert "4 attestation(s) counted, 1 attachment(s) ignored" in again
    assert "is a gate's own record" in again


def test_a_signed_denial_does_not_allow_the_next_run(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack 1, the documented GitHub setup: build, attest and verify in one workflow, one identity.

    Run 1 denies the unsigned image and signs and attaches its VSA (FAILED)
    as the workflow identity the policy names; run 2 must deny again instead
    of counting that VSA as the image's signature.
    """
    argv = [
        "verify",
        pushed.ref,
        "--policy",
        str(write_policy(gate, pushed)),
        "--trust-config",
        str(gate.trust),
    ]
    first = run([*argv, "--identity-token", gate.token(), "--format", "json"])
    record = json.loads(capsys.readouterr().out)
    assert first == EXIT_DENIED and record["verdict"] == "deny"
    assert record["vsaAttestation"]["signed"] is True
    vsa_referrer = record["vsaAttestation"]["referrer"]
    second = run([*argv, "--identity-token", gate.token(), "--format", "json"])
    again = json.loads(capsys.readouterr().out)
    assert second == EXIT_DENIED and again["verdict"] == "deny"
    signers = next(c for c in again["clauses"] if c["clause"] == "signers")
    assert signers["result"] == "fail" and "the gate's own records never count" in signers["reason"]
    ignored = {i["digest"]: i["reason"] for i in again["ignored"]}
    assert "is a gate's own record" in ignored[vsa_referrer]


def test_platform_decision_names_the_platform_manifest(
    gate: Gate, oci_registry: OCIRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack 2: with --platform the record, the VSA subject and the attachment name what runs."""
    index = push_image(gate.registries, oci_registry.host, multiarch=True)
    built = index.built
    assert isinstance(built, BuiltIndex)
    arm = built.images[1].manifest.descriptor
    gate.full(index, subject=arm)
    argv = ["verify", index.ref, "--platform", "linux/arm64", "--policy", str(write_policy(gate, index))]
    code = run(
        [*argv, "--trust-config", str(gate.trust), "--identity-token", gate.token(), "--format", "json"]
    )
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record
    assert record["digest"] == arm.digest and record["indexDigest"] == index.digest
    assert record["vsa"]["subject"][0]["digest"] == {"sha256": arm.digest.split(":", 1)[1]}
    assert record["vsaAttestation"]["digest"] == arm.digest
    on_arm = index.store.referrers(arm.digest, media.SIGSTORE_BUNDLE_V03).referrers
    assert record["vsaAttestation"]["referrer"] in {r.descriptor.digest for r in on_arm}


def test_hostile_strings_in_signed_payloads_stay_on_one_line(
    gate: Gate, pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Log injection: a finding id chosen by whoever wrote the scan must not start a GitHub workflow command."""
    from chaingate.predicate_types import COSIGN_VULN_V1
    from support.gate import attach, statement, vuln_scan

    gate.full(pushed)
    scan = vuln_scan([("CVE-2024-0001\n::error::pwned\x1b[31m", "CRITICAL")])
    attach(
        pushed.store, pushed.descriptor, gate.ids.good.sign(statement(pushed.digest, COSIGN_VULN_V1, scan))
    )
    code = run(
        ["verify", pushed.ref, "--policy", str(write_policy(gate, pushed)), "--trust-config", str(gate.trust)]
    )
    text = capsys.readouterr().out
    assert code == EXIT_DENIED
    assert "CVE-2024-0001 ::error::pwned\\x1b[31m (critical)" in text
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    assert "\x1b" not in text


def _quick(pushed: Pushed, gate: Gate, *identity: str, issuer: str | None = None) -> list[str]:
    """``verify`` with cosign's identity flags instead of a policy file, the decision as JSON."""
    issuer_flags = ["--certificate-oidc-issuer", issuer if issuer is not None else gate.stack.issuer_url]
    return [
        "verify",
        pushed.ref,
        *identity,
        *issuer_flags,
        "--trust-config",
        str(gate.trust),
        "--format",
        "json",
    ]


def test_identity_flags_verify_without_a_policy_file(
    gate: Gate, pushed: Pushed, oci_registry: OCIRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    gate.full(pushed)
    assert run(_quick(pushed, gate, "--certificate-identity", SAN)) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["verdict"] == "allow" and record["mode"] == "enforce"
    # No file was read, and the record says so: the flags' canonical JSON is what its digest covers.
    flags = {"--certificate-identity": SAN, "--certificate-oidc-issuer": gate.stack.issuer_url}
    canonical = json.dumps(flags, sort_keys=True, separators=(",", ":")).encode()
    assert record["policy"] == "(flags)"
    assert record["policyDigest"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    results = {c["clause"]: c["result"] for c in record["clauses"]}
    assert results["signers"] == "pass"
    assert {results[name] for name in ("provenance", "sbom", "vulnerabilities")} == {"skipped"}

    regexp = r"^https://github\.com/org/app/\.github/workflows/[^/]+@refs/heads/main$"
    assert run(_quick(pushed, gate, "--certificate-identity-regexp", regexp)) == 0
    capsys.readouterr()
    # Another identity, or the right one from another issuer, is denied.
    assert run(_quick(pushed, gate, "--certificate-identity", SAN.replace("org/app", "org/app-evil"))) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "deny"
    assert run(_quick(pushed, gate, "--certificate-identity", SAN, issuer="https://issuer.example")) == 1
    capsys.readouterr()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--certificate-identity-regexp", "https://github\\.com/org/app/.*"],
            "(flags): --certificate-identity-regexp: regular expression 'https://github\\\\.com/org/app/.*' "
            "is not anchored",
        ),
        (
            ["--certificate-identity-regexp", "^(unclosed$"],
            "--certificate-identity-regexp: regular expression",
        ),
        (["--certificate-identity", SAN, "--policy", "p.yaml"], "not allowed with argument"),
        (
            ["--certificate-identity", SAN, "--certificate-identity-regexp", "^x$"],
            "not allowed with argument",
        ),
        (
            [],
            "one of the arguments --policy --certificate-identity --certificate-identity-regexp is required",
        ),
    ],
)
def test_identity_flag_mistakes_exit_2_before_any_request(
    flags: list[str],
    message: str,
    gate: Gate,
    pushed: Pushed,
    oci_registry: OCIRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    oci_registry.clear_requests()
    with pytest.raises(SystemExit) as raised:
        run(["verify", pushed.ref, *flags, "--certificate-oidc-issuer", gate.stack.issuer_url])
    assert raised.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert oci_registry.requests == []


def test_the_issuer_goes_with_an_identity_and_only_with_one(
    gate: Gate, pushed: Pushed, oci_registry: OCIRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    oci_registry.clear_requests()
    with pytest.raises(SystemExit) as raised:
        run(["verify", pushed.ref, "--certificate-identity", SAN])
    assert raised.value.code == EXIT_USAGE
    assert capsys.readouterr().err.startswith(
        "chaingate: error: --certificate-identity: needs --certificate-oidc-issuer"
    )
    policy = write_policy(gate, pushed)
    with pytest.raises(SystemExit) as raised:
        run(["verify", pushed.ref, "--policy", str(policy), "--certificate-oidc-issuer", "https://x.example"])
    assert raised.value.code == EXIT_USAGE
    assert "--certificate-oidc-issuer: not allowed with --policy" in capsys.readouterr().err
    assert oci_registry.requests == []
