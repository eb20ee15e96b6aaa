"""A loopback Sigstore-compatible stack (OIDC issuer, Fulcio, Rekor) for tests and the demo.

Public Fulcio and Rekor cannot be reached from the test environment, so these
stand in for them. They are faithful where sigstore-python looks: its real
signer talks to them unchanged, and its real verifier checks what they
return (certificate chain, embedded SCT, inclusion proof, checkpoint, SET).
"""

from chaingate_testing.sigstore.fulcio import CTLog, FulcioCA
from chaingate_testing.sigstore.oidc import OIDCIssuer, github_actions_claims
from chaingate_testing.sigstore.rekor import RekorLog
from chaingate_testing.sigstore.stack import SigstoreStack

__all__ = ["CTLog", "FulcioCA", "OIDCIssuer", "RekorLog", "SigstoreStack", "github_actions_claims"]
