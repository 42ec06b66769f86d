"""``python -m minilora``: see minilora/cli.py."""

from minilora.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
