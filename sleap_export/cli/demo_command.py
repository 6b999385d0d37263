"""``demo``: the bundled model exported, run on the bundled clip, written and drawn."""

from __future__ import annotations

from pathlib import Path

import typer

from sleap_export.cli.common import QUIET, quiet


def demo(
    output_dir: Path = typer.Option(Path("demo_output"), "--output-dir", help="Where to write artifacts, demo.slp and the overlay."),
    quiet_flag: bool = QUIET,
):
    """Export the bundled model, predict on the bundled clip, write demo.slp and an overlay PNG."""
    from sleap_export.demo import run_demo

    run_demo(output_dir, show=not quiet(quiet_flag))
