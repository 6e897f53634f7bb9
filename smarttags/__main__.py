"""``python -m smarttags``."""

from .cli import main

main()
