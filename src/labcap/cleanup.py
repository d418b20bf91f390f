"""Resource hygiene: what labcap starts dies with it, and ``labcap cleanup`` removes
what a crashed run left behind.

Every resource labcap creates carries its mark:

- processes: the load engine is started with ``die_with_parent`` (Linux
  PR_SET_PDEATHSIG), so a SIGKILLed ``labcap run`` does not leave it running;
- containers: the label ``app.kubernetes.io/managed-by=labcap`` and
  ``labcap.run-id=<run id>`` (and a ``labcap-`` name prefix);
- Kubernetes namespaces and pods: the same two labels;
- temporary directories: the prefix ``labcap-`` in the system temp dir;
- run directories: a ``.lock`` file, held (flock) while a run writes.
"""

from __future__ import annotations

import ctypes
import signal

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "labcap"
RUN_ID_LABEL = "labcap.run-id"
TEMP_PREFIX = "labcap-"

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive labcap (SIGTERM when it dies).

    SIGTERM, not SIGKILL: the load engine then journals its open window and ends
    itself, so the orphaned run still reads as partial with every window kept.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except OSError:
        pass  # not Linux: the engine's own schedule deadline still ends it
