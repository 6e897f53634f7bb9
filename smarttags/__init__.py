"""smarttags: the application layer (settings, service, CLI) over indexer, training, ranking."""

__version__ = "0.1.0"
