"""`python -m streams` is the `referral-rewards` command."""

from streams.cli import main

# Guarded: replays start helper processes, which import the main module again.
if __name__ == "__main__":
    raise SystemExit(main())
