"""Faults injected into Ray workers by the Ray tests (a `worker_process_setup_hook`).

Only features with these names are affected, so every other test's spec runs as
usual on the same cluster: `boom` raises in its op, `crash_me` kills its worker
process (after noting the attempt in $PIPESPEC_TEST_MARKS), `slow` sleeps.
"""

from __future__ import annotations

import os
import time


def install() -> None:
    from pipespec.runtime.ops import transform

    real = transform.run

    def run(ctx):
        name = ctx.node.name
        if name == "boom":
            raise RuntimeError("boom in the op")
        if name == "crash_me":
            with open(os.path.join(os.environ["PIPESPEC_TEST_MARKS"], "crash_me"), "a") as fh:
                fh.write(f"{os.getpid()}\n")
            os._exit(1)
        if name == "slow":
            time.sleep(60)
        return real(ctx)

    transform.run = run
