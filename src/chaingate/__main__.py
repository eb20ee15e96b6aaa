"""``python -m chaingate`` runs the CLI."""

from chaingate.cli import main

main()
