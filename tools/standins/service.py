"""The with-statement for the test servers and engines: ``with X() as x`` starts x and stops it after."""

from types import TracebackType
from typing import Self


class Service:
    """Subclasses define ``start`` (returning themselves) and ``stop`` (safe to call twice)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
