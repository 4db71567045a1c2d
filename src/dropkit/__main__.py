"""``python -m dropkit ...``: the same as the ``dropkit`` command."""

from dropkit.cli import entry

if __name__ == "__main__":
    entry()
