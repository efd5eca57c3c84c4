"""A dirty app for the quick start: a tiny word-count "model", loaded once per dirty worker.

Run it beside the example WSGI app (the HTTP workers call it at /dirty):

    gcorn --chdir examples --dirty-app dirty_app:WordCount --dirty-workers 2 hello:app
    curl 'http://127.0.0.1:8000/dirty?text=the+cat+and+the+hat'
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from typing import Any

from gcorn.dirty import DirtyApp

WORD = re.compile(r"[\w']+")
# the longest a caller may make one call "think", so the example cannot be used to pin a worker
MAX_DELAY = 5.0


class WordCount(DirtyApp):
    """Counts words; `init()` stands for loading a model, `count` for running it."""

    def init(self) -> None:
        """Load the "model" once per dirty worker (a real app would load weights here)."""
        self.stopwords = frozenset("a an and are as at be by for in is it of on or the to".split())
        self.calls = 0

    def count(self, text: str, delay: float = 0.0) -> dict[str, Any]:
        """Words in `text` and its five most common non-stopwords; `delay` mimics a slow model."""
        if delay > 0:
            time.sleep(min(MAX_DELAY, delay))
        words = [word.lower() for word in WORD.findall(text)]
        common = Counter(word for word in words if word not in self.stopwords).most_common(5)
        self.calls += 1
        return {
            "words": len(words),
            "top": [[word, n] for word, n in common],
            "calls": self.calls,  # calls served by this worker: the state lives on
            "worker": os.getpid(),
        }
