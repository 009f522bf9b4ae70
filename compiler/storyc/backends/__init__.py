"""Render backends. `base` is the one small interface the executor talks to."""
