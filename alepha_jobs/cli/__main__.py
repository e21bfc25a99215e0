"""``python -m alepha_jobs.cli``: the same as the ``alepha-jobs`` command."""

from . import main

main()
