"""Serve one file over HTTP at a capped rate, as a slow link would: for timing `lipparse-rt video
URL` (which parses a download as it comes) against the download and the parse one after another.

  python tools/slow_server.py FILE --rate 200000 [--port 8800]

Prints the URL; serves until Ctrl-C. `--rate`: bytes per second (in 16 KiB writes).
"""

from __future__ import annotations

import argparse
import http.server
import time
from pathlib import Path

CHUNK = 16 << 10


def handler(path: Path, rate: float) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler that sends `path`'s bytes at `rate` bytes per second."""
    data = path.read_bytes()

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            t0 = time.perf_counter()
            for at in range(0, len(data), CHUNK):
                time.sleep(max(0.0, t0 + at / rate - time.perf_counter()))
                try:
                    self.wfile.write(data[at:at + CHUNK])
                except (BrokenPipeError, ConnectionResetError):
                    return

    return Slow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--rate", type=float, default=200_000, help="bytes per second")
    ap.add_argument("--port", type=int, default=8800)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.file, args.rate))
    print(f"http://127.0.0.1:{args.port}/{args.file.name} at {args.rate:.0f} bytes/s", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
