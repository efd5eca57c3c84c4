"""`python -m gcorn.cli`: the same as the `gcorn` command."""

from gcorn.cli.main import run

if __name__ == "__main__":
    run()
