"""The thread shell of the suites' cloud bridges (tests/e2e_aws's EBS, tests/e2e_azure's
managed disk): a bridge watches a stand-in cloud and plays what it reports on lab hosts, a
step every half second, until the test stops it. A step's error ends the bridge and is kept
for the test, which raises it (`check`) where it can say what failed."""

from __future__ import annotations

import threading


class Bridge(threading.Thread):
    """Calls `step()` every `interval` seconds until `stop()`; the first exception ends the
    loop and is kept in `error`."""

    interval = 0.5

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def step(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self._halt.wait(self.interval):
                self.step()
        except BaseException as exc:  # noqa: BLE001 - kept for the test, which raises it
            self.error = exc

    def stop(self, timeout: float = 10) -> None:
        self._halt.set()
        self.join(timeout=timeout)

    def check(self) -> None:
        """Raise the error that ended the bridge, if any."""
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error
