"""`python -m gcorn`: the gcorn command (as `python -m gunicorn` is gunicorn's)."""

from gcorn.cli.main import run

if __name__ == "__main__":
    run()
