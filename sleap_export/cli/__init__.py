"""The command line: parsing and printing only, one module per command group."""

from sleap_export.cli.application import app, main

__all__ = ["app", "main"]
