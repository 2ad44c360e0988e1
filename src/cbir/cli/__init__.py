"""The ``cbir`` command: `main` parses the arguments (`cbir.cli.program`), `cbir.cli.commands` runs them,
`cbir.cli.output` keeps stdout for results."""

from cbir.cli.program import main

__all__ = ["main"]
