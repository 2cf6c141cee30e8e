"""``python -m kdns`` is the ``kdns`` command."""

from kdns.cli import main

raise SystemExit(main())
