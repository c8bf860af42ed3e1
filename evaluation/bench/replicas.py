"""Several `helpdesk-scorer serve` processes on one port (SO_REUSEPORT: the kernel spreads the
connections), the benchmark's stand-in for one-CPU replicas behind a Kubernetes Service.

    python -m evaluation.bench.replicas --count 2 --model models/release --port 8000

Each replica is our whole server (connection guard, admission, its own model and batcher)
with HELPDESK_REUSE_PORT=true; the other settings come from the environment. SIGTERM or
SIGINT is passed on to every replica, and this process exits when they all have (0 if each
stopped on it, 1 if one failed), so the benchmark's memory and CPU figures sum the replicas
under one process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from serving.core.contract import RELEASE_DIR

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--model", type=Path, default=RELEASE_DIR)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    command = [sys.executable, "-m", "serving.cli", "serve", "--model", str(args.model)]
    env = {**os.environ, "HELPDESK_REUSE_PORT": "true"}
    replicas = [
        subprocess.Popen([*command, "--port", str(args.port)], env=env) for _ in range(args.count)
    ]

    def stop(signum: int, frame: FrameType | None) -> None:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [replica.wait() for replica in replicas]
    # uvicorn re-raises the signal it drained on, so a replica stopped by it ends with -signum
    stopped = (0, -signal.SIGTERM, -signal.SIGINT)
    sys.exit(0 if all(code in stopped for code in codes) else 1)


if __name__ == "__main__":
    main()
