"""Where the X-Ray SDK of the measured processes sends its trace segments (``make bench``, ``make cost``)."""

import socket
import threading


class UdpSink:
    """Where the X-Ray SDK sends trace segments (the X-Ray daemon's job on Lambda): counts them."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="xray-sink", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.socket.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recv(65536)
            except TimeoutError:
                continue
            self.datagrams += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()
