"""The backends' names and which one a command uses by default: `xai` when XAI_API_KEY is
set, else `offline`.

A base module: cache keys, `storyc cache prune` and the commands all need the names, while
the backends themselves (Pillow, xai-sdk, gRPC) sit high in the layers and load lazily."""

from __future__ import annotations

import os

BACKEND_NAMES = ("offline", "xai")


def default_backend_name() -> str:
    return "xai" if os.environ.get("XAI_API_KEY") else "offline"
