"""``python -m cryoweave`` is the ``cryoweave`` command."""

from cryoweave.cli import main

main()
