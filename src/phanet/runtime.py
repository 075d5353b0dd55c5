"""What this machine offers a run: usable CPU cores, memory, CUDA, native bfloat16, and the precision to
use; and how the operating system's signals stop one. Importing this module does not load PyTorch."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from phanet.errors import PhanetWarning


class Stopped(KeyboardInterrupt):
    """A command stopped by a signal: SIGTERM (what cluster schedulers and ``kill`` send), SIGINT
    (Ctrl+C), SIGHUP (a closed terminal or SSH session) or SIGQUIT (Ctrl+\\).

    A ``KeyboardInterrupt``, so that it passes every ``except Exception`` on its way out. The command
    line prints its message and exits with ``exit_status``, 128 + the signal's number (143 for
    SIGTERM, 130 for SIGINT, 129 for SIGHUP, 131 for SIGQUIT), as a shell reports a process that a
    signal ended.
    """

    def __init__(self, signum: int, message: str | None = None) -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


#: The signals that stop a command the way Ctrl+C does (:func:`stop_on_signals`).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))

#: Signals received since :func:`stop_on_signals`, the first one raising :class:`Stopped`.
_received: list[int] = []


def raise_stopped(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops the command as Ctrl+C does, with :class:`Stopped`.

    Only the first signal raises: a second one (Ctrl+C pressed twice) arrives while the command says
    what it kept and would cut that short, so it is let pass; a third ends the process at once."""
    _received.append(signum)
    if len(_received) == 1:
        raise Stopped(signum)
    if len(_received) >= 3:
        os._exit(128 + _received[0])


def stop_on_signals() -> dict[int, object]:
    """Make every signal of :data:`STOP_SIGNALS` raise :class:`Stopped` (:func:`raise_stopped`); returns
    the handlers it replaced, for :func:`restore_signals`. Only the main thread may set handlers."""
    _received.clear()
    return {signum: signal.signal(signum, raise_stopped) for signum in STOP_SIGNALS}


def stopping() -> bool:
    """Whether a signal has stopped the command since :func:`stop_on_signals`."""
    return bool(_received)


def restore_signals(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


def usable_cpus() -> int:
    """CPU cores this process may run on: its affinity mask, bounded by a cgroup CPU quota (containers)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


class LoadWatch:
    """The machine's 1-minute load average, sampled in a thread every ``every`` seconds while the
    ``with`` block runs (and once at its end): how busy the machine was during work that waits on
    other processes.

    ``others(own)`` is the mean load less ``own``, the threads the work itself kept busy: what other
    processes added."""

    def __init__(self, every: float = 30.0) -> None:
        import threading

        self.every = every
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0

    def others(self, own: float) -> float:
        return max(0.0, self.mean - own)

    def busy(self, own: int) -> str | None:
        """What other processes took while the work ran, in words, or None when they took less than
        half a core on average."""
        if self.others(own) < 0.5:
            return None
        return (
            f"other processes kept about {self.others(own):.1f} of the {usable_cpus()} cores busy "
            f"(load {self.mean:.1f}, {own} of it this run's)"
        )


def bounded_by_cpus(requested: int, key: str) -> int:
    """``requested`` threads or processes, at most :func:`usable_cpus`: more only wait for each other
    and take memory (4096 threads or 1024 loader processes take gigabytes); a bounded value warns with
    one line naming the config ``key``."""
    cpus = usable_cpus()
    if requested <= cpus:
        return requested
    warnings.warn(
        f"{key} {requested} is more than the {cpus} CPU cores this process may use; using {cpus}", PhanetWarning, stacklevel=2
    )
    return cpus


def _number(path: str, field: str | None = None) -> int | None:
    """A number of a file under /proc or /sys (of the line starting with ``field``, in kB there), or None."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    if field is None:
        value = text.strip()
        return int(value) if value.isdigit() else None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return None


def available_memory() -> int:
    """Bytes of memory this process may still take: the system's available memory, bounded by a
    cgroup's memory limit (containers) and by this process's address-space limit (``ulimit -v``)."""
    bounds = [_number("/proc/meminfo", "MemAvailable")]
    limit, used = _number("/sys/fs/cgroup/memory.max"), _number("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        bounds.append(max(0, limit - used))
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY:
        bounds.append(max(0, address_space - (_number("/proc/self/status", "VmSize") or 0)))
    known = [bound for bound in bounds if bound is not None]
    return min(known) if known else 2**62


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` setting puts the run on a CUDA GPU on this machine."""
    import torch

    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


#: PhaNet's own precision: the three backbones under bfloat16 autocast, the squares, PANs, crop-and-zoom,
#: SAL, heads and loss in 32 bits (Lightning itself trains in ``32-true``; see :func:`resolve_precision`).
BF16_BACKBONES = "bf16-backbones"


def bf16_is_fast(accelerator: str) -> bool:
    """Whether bfloat16 autocast speeds up training here: a CUDA GPU that supports it, or a CPU with
    native bfloat16."""
    import torch

    if uses_cuda(accelerator):
        return torch.cuda.is_bf16_supported()
    return accelerator in ("auto", "cpu") and cpu_has_native_bf16()


def resolve_precision(precision: str, accelerator: str, crop_attention: bool = True) -> str:
    """``train.precision`` for this machine and network. ``auto``: where bfloat16 is fast
    (:func:`bf16_is_fast`), ``bf16-backbones`` for a network with crop-and-zoom attention (PhaNet with
    H_S2 or H_S3) and ``bf16-mixed`` for the others; else ``32-true``. ``bf16-backbones`` asked of a
    network without crop-and-zoom is ``bf16-mixed``. Any other value is Lightning's own and passed on
    as it is.

    Why not ``bf16-mixed`` for the attention: the gradient that reaches a square (x, y, l) is a sum over
    the zoomed pixels of the next scale's input gradient, largely cancelling. With everything that
    autocast lowers in bfloat16, the squares' own arithmetic included, it pointed elsewhere on the
    networks of an older recipe (cosine 0.30 and −0.97 with the float64 gradient of the ranking loss,
    1.000 in float32), and in three of three such trainings the S2 square ended pinned in a corner of
    the image for every face. ``bf16-backbones`` keeps the squares, their PANs and the sampling in 32
    bits and lowers only the backbones, where 88 % of the step goes (``benchmarks/precision_attention.py``).
    """
    if precision == BF16_BACKBONES:
        return precision if crop_attention else "bf16-mixed"
    if precision != "auto":
        return precision
    if not bf16_is_fast(accelerator):
        return "32-true"
    return BF16_BACKBONES if crop_attention else "bf16-mixed"


def lightning_precision(precision: str) -> str:
    """The precision Lightning's ``Trainer`` runs in for a resolved ``train.precision``: ``32-true`` for
    ``bf16-backbones``, whose autocast the network applies itself."""
    return "32-true" if precision == BF16_BACKBONES else precision


@contextlib.contextmanager
def started_processes(spawns: bool) -> Iterator[None]:
    """What the processes a distributed launcher starts meanwhile need from this one.

    - They print no C++ warnings: DDP's reducer tells each of them once that a step left no parameter
      without a gradient, which is true of every step of PhaNet after its PAN initialisation (only
      errors are printed; a ``TORCH_CPP_LOG_LEVEL`` set by the user is kept).
    - With ``spawns`` (``ddp_spawn``, whose processes train while this one waits), SIGTERM, SIGHUP and
      SIGQUIT are passed on to them, so that each stops as a training stops, and this one stops with
      :class:`Stopped` once they have. Ctrl+C reaches them from the terminal itself.
    """
    given = os.environ.get("TORCH_CPP_LOG_LEVEL")
    os.environ["TORCH_CPP_LOG_LEVEL"] = given or "ERROR"
    previous: dict[int, Any] = {}

    def pass_on(signum: int, frame: Any) -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signum)  # type: ignore[arg-type]
        raise Stopped(signum)

    if spawns and threading.current_thread() is threading.main_thread():
        forwarded = [s for s in STOP_SIGNALS if s != signal.SIGINT]
        previous = {signum: signal.signal(signum, pass_on) for signum in forwarded}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for child in multiprocessing.active_children() if previous else ():
            child.join(timeout=120)  # stopped ones write nothing more: last.ckpt is whole (atomic)
        if given is None:
            del os.environ["TORCH_CPP_LOG_LEVEL"]
