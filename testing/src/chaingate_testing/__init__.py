"""Local stand-ins for services that tests and the demo need.

Registries, a Sigstore-compatible stack, an image builder. Not a stable API.
"""
