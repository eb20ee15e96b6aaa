"""chaingate: make a container image's supply chain verifiable, and enforce it at deploy."""

__version__ = "0.1.0"
