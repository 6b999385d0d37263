"""``inspect``: an artifact's embedded spec, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sleap_export.cli.common import QUIET, quiet


def inspect(
    artifact: Path = typer.Argument(..., help="An artifact written by sleap-export."),
    as_json: bool = typer.Option(False, "--json", help="Print the spec as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the payload hash; exit 1 if the artifact was modified."),
    quiet_flag: bool = QUIET,
):
    """Print the spec embedded in an artifact (also with --quiet: the spec is what was asked for)."""
    from sleap_export.runtime.artifacts.description import describe_spec
    from sleap_export.runtime.artifacts.formats import read_spec, verify_payload

    quiet(quiet_flag)
    spec = verify_payload(artifact) if verify else read_spec(artifact)
    if as_json:
        typer.echo(json.dumps(json.loads(spec.to_json()), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{artifact.name}: {spec.model_type}", show_header=False)
    for topic, text in describe_spec(spec, verified=verify):
        table.add_row(topic, text)
    Console().print(table)
