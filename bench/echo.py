"""`python -m bench.echo`: the echo workload alone — `python -m bench --workloads echo` without
the lifecycle figures, written to results/echo-core.md unless ``--output`` says otherwise.

    python -m bench.echo                          # every peer, OpenEAS direct and gateway
    python -m bench.echo --peers nginx,fastapi --quick

Any option of `python -m bench` may be given.
"""

from __future__ import annotations

import sys

from bench.__main__ import RESULTS, main


def arguments(argv: list[str]) -> list[str]:
    """``argv`` with the echo workload chosen and the default output of this entry point."""
    chosen = [a for a in argv if a == "--workloads" or a.startswith("--workloads=")]
    if chosen:
        raise SystemExit("python -m bench.echo: the workload is echo; use python -m bench")
    extra = ["--workloads", "echo", "--no-lifecycle"]
    given = any(a == "--output" or a.startswith("--output=") for a in argv)
    if not given and "--quick" not in argv:  # a smoke check goes to results/quick.md
        extra += ["--output", str(RESULTS / "echo-core.md")]
    return [*argv, *extra]


if __name__ == "__main__":
    sys.exit(main(arguments(sys.argv[1:])))
