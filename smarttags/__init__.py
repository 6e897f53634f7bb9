"""smarttags: the application layer (settings, service wiring, CLI) over indexer, training, ranking."""

__version__ = "0.1.0"
