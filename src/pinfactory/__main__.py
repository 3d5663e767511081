"""``python -m pinfactory``: the same as the ``pinfactory`` command."""

from pinfactory.cli import main

main()
