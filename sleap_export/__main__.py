"""``python -m sleap_export`` runs the same CLI as the ``sleap-export`` command."""

from sleap_export.cli import main

main()
