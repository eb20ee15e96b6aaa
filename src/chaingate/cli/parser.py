"""The command line: every command, flag, default and help text, and nothing else.

``build_parser`` only declares; parsing happens in ``chaingate.cli.run``. The
command functions are looked up on their module when the parser is built, so
importing this module imports no library code beyond the version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chaingate import __version__
from chaingate.cli import commands

IMAGE_FORMS = "REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:..., oci:DIR[:TAG|@DIGEST] or docker-archive:FILE"
IMAGE_HELP = f"the image: {IMAGE_FORMS}; a tag is resolved to a digest once"
VERIFY_DESCRIPTION = """\
Verify every attachment of IMAGE against a policy file, or, without one, require
a signature from one certificate identity, as `cosign verify` and
`gh attestation verify` do (a policy with only a signers clause, enforced).
Exit 0 allowed, 1 denied, 2 usage or configuration error."""
VERIFY_EXAMPLES = """\
examples:
  # the gate, with a policy file; the decision record as JSON
  chaingate verify us.icr.io/team/app@sha256:<hex> --policy policy.yaml --format json -o decision.json

  # quick check: signed by the release workflow of org/app on main
  chaingate verify us.icr.io/team/app:1.2.3 \\
    --certificate-identity https://github.com/org/app/.github/workflows/release.yml@refs/heads/main \\
    --certificate-oidc-issuer https://token.actions.githubusercontent.com

  # any v* tag of that workflow (the regexp must be anchored ^...$)
  chaingate verify us.icr.io/team/app:1.2.3 \\
    --certificate-identity-regexp '^https://github\\.com/org/app/\\.github/workflows/release\\.yml@refs/tags/v.*$' \\
    --certificate-oidc-issuer https://token.actions.githubusercontent.com"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's ``func`` is its function in ``chaingate.cli.commands``."""
    parser = argparse.ArgumentParser(
        prog="chaingate",
        description="Verifiable supply chain for container images: SBOM, provenance, keyless attestations, "
        "a policy gate and Code Engine deploys.",
    )
    parser.add_argument("--version", action="version", version=f"chaingate {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common = argparse.ArgumentParser(add_help=False)
    _insecure_registry(common)
    common.add_argument(
        "--timeout",
        type=float,
        default=None,  # 60 per request; verify's is the whole verify's deadline, 300 (see args.registries)
        metavar="SECONDS",
        help="per-request read timeout (default 60); for verify, the deadline of the whole verify, every "
        "registry read included, past which it denies (default 300)",
    )
    _platform(common)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "inspect", parents=[common], help="digest, platforms and the tree of attachments of an image"
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    _format(p)
    p.set_defaults(func=commands.cmd_inspect)

    p = sub.add_parser("sbom", parents=[common], help="CycloneDX 1.6 SBOM of an image's final filesystem")
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    p.add_argument("-o", "--output", metavar="FILE", help="write the SBOM here (default: stdout)")
    p.set_defaults(func=commands.cmd_sbom)

    p = sub.add_parser(
        "copy",
        parents=[common],
        help="copy an image and its attachments between layout, archive and registry",
    )
    p.add_argument("src", metavar="SRC", help="the image to copy (" + IMAGE_FORMS + ")")
    p.add_argument(
        "dst",
        metavar="DST",
        help="where to: a registry REGISTRY/REPO[:TAG], oci:DIR[:TAG] or docker-archive:FILE",
    )
    p.add_argument("--no-referrers", action="store_true", help="copy the image only, not its attachments")
    _format(p)
    p.set_defaults(func=commands.cmd_copy)

    p = sub.add_parser(
        "mirror",
        parents=[common],
        help="gate an upstream image, then copy exactly the verified digest and its attachments; "
        "exit 0 mirrored, 1 denied (nothing written), 2 usage",
        description="Resolve SRC once, verify it against the policy, and only on an allow copy that digest "
        "with its attachments to DST, recording the decision beside it. With --platform, the platform "
        "manifest is what is verified and mirrored. Examples: chaingate mirror "
        "gcr.io/distroless/static:nonroot us.icr.io/mirror/static:nonroot --policy upstream.yaml",
    )
    p.add_argument("src", metavar="SRC", help="the upstream image (a tag is resolved to a digest once)")
    p.add_argument("dst", metavar="DST", help="where the verified digest goes: a registry or an oci: layout")
    p.add_argument(
        "--policy", required=True, metavar="FILE", help="the policy for upstream images (version 1)"
    )
    _trust_config(p)
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="text for people, json for jobs"
    )
    p.set_defaults(func=commands.cmd_mirror)

    p = sub.add_parser(
        "provenance",
        parents=[common],
        help="SLSA v1 provenance (an in-toto Statement v1) for an image, from the CI environment or flags",
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    p.add_argument("-o", "--output", metavar="FILE", help="write the statement here (default: stdout)")
    p.add_argument(
        "--ci",
        choices=("auto", "none", "github-actions", "tekton", "ibm-toolchain"),
        default="auto",
        help="where the build context comes from (default: detect; none = flags only)",
    )
    p.add_argument("--build-type", metavar="URI", help="buildDefinition.buildType")
    p.add_argument("--builder-id", metavar="URI", help="runDetails.builder.id")
    p.add_argument("--invocation-id", metavar="ID", help="runDetails.metadata.invocationId")
    p.add_argument("--source-uri", metavar="URL", help="source repository (e.g. https://github.com/org/app)")
    p.add_argument("--source-ref", metavar="REF", help="source ref built (e.g. refs/heads/main)")
    p.add_argument("--source-commit", metavar="SHA", help="source commit built (40 or 64 hex digits)")
    p.add_argument("--started-on", metavar="TIME", help="build start, RFC 3339 (…Z) or epoch seconds")
    p.add_argument("--finished-on", metavar="TIME", help="build end, RFC 3339 (…Z) or epoch seconds")
    p.add_argument(
        "--base-image",
        action="append",
        metavar="NAME@DIGEST",
        help="a base image, pinned by digest (repeatable; added to those the image's labels name)",
    )
    p.add_argument(
        "--external-parameter", action="append", metavar="KEY=VALUE", help="add to externalParameters"
    )
    p.add_argument(
        "--internal-parameter", action="append", metavar="KEY=VALUE", help="add to internalParameters"
    )
    p.set_defaults(func=commands.cmd_provenance)

    signing = argparse.ArgumentParser(add_help=False)
    _trust_config(signing)
    tokens = signing.add_mutually_exclusive_group()
    tokens.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="OIDC identity token (default: $SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token)",
    )
    tokens.add_argument(
        "--identity-token-file", type=Path, metavar="PATH", help="read the OIDC token from a file"
    )
    _format(signing)

    p = sub.add_parser(
        "sign",
        parents=[common, signing],
        help="keyless-sign an image (cosign v3 signature: predicate https://sigstore.dev/cosign/sign/v1)",
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    p.set_defaults(func=commands.cmd_sign)

    p = sub.add_parser(
        "attest",
        parents=[common, signing],
        help="keyless-sign a predicate about an image and attach the Sigstore bundle as a referrer",
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    p.add_argument(
        "--predicate", required=True, metavar="FILE", help="a bare predicate or a whole in-toto Statement v1"
    )
    p.add_argument(
        "--type",
        required=True,
        metavar="TYPE",
        help="cosign's names: slsaprovenance or slsaprovenance02 (SLSA v0.2), slsaprovenance1 (SLSA v1), "
        "cyclonedx, spdxjson, vuln, openvex, vsa; or a predicate type URI",
    )
    p.set_defaults(func=commands.cmd_attest)

    p = sub.add_parser(
        "verify",
        parents=[common, signing],
        help="the gate: verify every attachment against a policy; exit 0 allowed, 1 denied, 2 usage",
        description=VERIFY_DESCRIPTION,
        epilog=VERIFY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    policy = p.add_mutually_exclusive_group(required=True)
    policy.add_argument("--policy", metavar="FILE", help="the policy file (version 1)")
    policy.add_argument(
        "--certificate-identity",
        metavar="IDENTITY",
        help="no policy file: require a signature whose certificate names exactly this identity (e.g. a "
        "workflow URL), from --certificate-oidc-issuer",
    )
    policy.add_argument(
        "--certificate-identity-regexp",
        metavar="REGEXP",
        help="no policy file: as --certificate-identity, the identity matched in full by this regexp, "
        "which must be anchored ^...$",
    )
    p.add_argument(
        "--certificate-oidc-issuer",
        metavar="URL",
        help="the OIDC issuer of that identity (e.g. https://token.actions.githubusercontent.com)",
    )
    p.add_argument("--project", metavar="ID", help="apply this project's override from the policy's projects")
    p.add_argument(
        "-o", "--output", metavar="DECISION", help="write the JSON decision record (with its VSA) here"
    )
    p.add_argument(
        "--no-sign",
        action="store_true",
        help="never sign or attach the decision, even with an identity at hand",
    )
    p.set_defaults(func=commands.cmd_verify)

    ibm = argparse.ArgumentParser(add_help=False)
    ibm.add_argument("--project", required=True, metavar="ID", help="the Code Engine project ID")
    ibm.add_argument(
        "--region", metavar="REGION", help="Code Engine region (e.g. us-south); default: $CODE_ENGINE_URL"
    )
    ibm.add_argument(
        "--auth",
        choices=("apikey", "container", "assume"),
        help="IAM authenticator: a service ID's API key, a compute-resource token + trusted profile, or an "
        "API key assuming a trusted profile (default: the IBM SDK's CODE_ENGINE_* configuration)",
    )
    ibm.add_argument(
        "--apikey-file", type=Path, metavar="FILE", help="read the API key here (default: $IBMCLOUD_API_KEY)"
    )
    ibm.add_argument("--profile-id", metavar="ID", help="trusted profile ID for --auth container|assume")
    ibm.add_argument(
        "--profile-name", metavar="NAME", help="trusted profile name for --auth container|assume"
    )
    ibm.add_argument(
        "--cr-token-file", type=Path, metavar="FILE", help="compute resource token for --auth container"
    )
    ibm.add_argument("--iam-url", metavar="URL", help="IAM token service (default https://iam.cloud.ibm.com)")
    ibm.add_argument("--account-id", metavar="ID", help="the account (default: the project's)")
    ibm.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="per-request timeout for IBM Cloud and registry calls (default 30)",
    )
    _format(ibm)
    workload = argparse.ArgumentParser(add_help=False)
    which = workload.add_mutually_exclusive_group()
    which.add_argument("--app", metavar="NAME", help="a Code Engine application")
    which.add_argument("--job", metavar="NAME", help="a Code Engine job")

    p = sub.add_parser(
        "deploy",
        parents=[ibm, workload],
        help="verify an image against the policy, then deploy exactly that digest to Code Engine",
    )
    p.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (version 1)")
    _trust_config(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long the whole deploy may take, readiness and job run included (default 600)",
    )
    p.add_argument(
        "--deployer",
        metavar="IAM_ID",
        help="first audit IAM: nobody but this identity may deploy to the project",
    )
    p.add_argument(
        "--trusted-profile",
        action="append",
        metavar="ID",
        help="with --deployer: also check this workload trusted profile (repeatable)",
    )
    p.add_argument("--bindings", metavar="FILE", help="apply this secret/config-map bindings manifest too")
    p.add_argument("--image-secret", metavar="NAME", help="the registry access secret Code Engine pulls with")
    p.add_argument("--submit", action="store_true", help="with --job: run the job once and wait for it")
    _insecure_registry(p)
    _platform(p)
    p.add_argument("-o", "--output", metavar="FILE", help="also write the deployment record here")
    p.set_defaults(func=commands.cmd_deploy)

    audit = sub.add_parser("audit", help="check that the gate is the only way into a Code Engine project")
    audits = audit.add_subparsers(dest="audit", metavar="AUDIT", required=True)
    p = audits.add_parser(
        "iam",
        parents=[ibm, workload],
        help="fail when anyone but the deployer can write to the project, or the workload's profile is shared",
    )
    p.add_argument("--deployer", required=True, metavar="IAM_ID", help="the one identity allowed to deploy")
    p.add_argument(
        "--trusted-profile",
        action="append",
        metavar="ID",
        help="a workload trusted profile to check (repeatable)",
    )
    p.set_defaults(func=commands.cmd_audit_iam)
    p = audits.add_parser(
        "bindings",
        parents=[ibm, workload],
        help="drift between a bindings manifest and the secrets/config maps a workload runs with",
    )
    p.add_argument("--manifest", required=True, metavar="FILE", help="the bindings manifest (YAML or JSON)")
    p.set_defaults(func=commands.cmd_audit_bindings)
    return parser


# Flags that commands outside the shared parents (deploy) take too: declared once, here.


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts and CI steps",
    )


def _insecure_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="use plain HTTP for this registry host[:port] (loopback hosts always do); repeatable",
    )


def _platform(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="select one platform of a multi-arch image"
    )


def _trust_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-config",
        type=Path,
        metavar="FILE",
        help="Sigstore ClientTrustConfig JSON (default: public-good Sigstore, fetched over TUF)",
    )
