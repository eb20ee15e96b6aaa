"""Keyless Sigstore signing: identity tokens, trust config, DSSE attestations attached as OCI referrers.

Modules import sigstore lazily, inside the functions that need it, so that
importing this package (and starting the CLI) stays cheap.
"""
