"""Ordered, bounded parallel map: decode ahead on threads while the caller runs inference."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int
) -> Iterator[tuple[T, R | Exception]]:
    """Yield ``(item, fn(item))`` in input order, or ``(item, exception)`` if it raised.

    At most ``window`` items are in flight, so memory stays bounded however many
    items there are. Pillow and numpy release the GIL, so decoding threads overlap with
    inference on the caller's thread.
    """

    def call(item: T) -> R | Exception:
        try:
            return fn(item)
        except Exception as e:
            return e

    pending: deque[tuple[T, Future[R | Exception]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(call, item)))
                if len(pending) >= window:
                    done, fut = pending.popleft()
                    yield done, fut.result()
            while pending:
                done, fut = pending.popleft()
                yield done, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()
