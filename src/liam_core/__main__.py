"""``python -m liam_core analyze|train ...``: the ``liam-core`` command."""

from .cli import main

main()
