"""`python -m app`: the operator's command line (app/cli.py)."""

from app.cli import main

main()
