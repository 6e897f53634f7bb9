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
    pending: deque[tuple[T, Future[R]]] = deque()
    it = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        try:
            for item in it:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= window:
                    yield _result(*pending.popleft())
            while pending:
                yield _result(*pending.popleft())
        finally:
            for _, fut in pending:
                fut.cancel()


def _result(item: T, fut: Future[R]) -> tuple[T, R | Exception]:
    try:
        return item, fut.result()
    except Exception as e:
        return item, e
