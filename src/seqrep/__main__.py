"""``python -m seqrep`` (what ``torchrun -m seqrep`` launches): the ``seqrep`` command."""

from seqrep.cli import main

main()
