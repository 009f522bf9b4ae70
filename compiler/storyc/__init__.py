"""storyc: a declarative YAML storyboard compiler."""

__version__ = "0.1.0"
