"""Apps declaring resource slots (virtual GPU tokens: no device is touched)."""

from __future__ import annotations

import os

from gcorn.dirty import DirtyApp, current_resources

# What the worker's environment said when it imported this module (before init()).
AT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES")


class Whole(DirtyApp):
    resources = {"gpu": 1}

    def seen(self):
        return {"pid": os.getpid(), "at_import": AT_IMPORT, "current": current_resources()}


class Half(DirtyApp):
    resources = {"gpu": 0.5}

    def seen(self):
        return {"pid": os.getpid(), "at_import": AT_IMPORT, "current": current_resources()}


class Plain(DirtyApp):
    def seen(self):
        return {"pid": os.getpid(), "at_import": AT_IMPORT, "current": current_resources()}
