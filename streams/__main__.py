"""`python -m streams` is the `referral-rewards` command."""

from streams.cli import main

raise SystemExit(main())
