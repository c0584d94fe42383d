"""GPU samples (CONTRACT §8.3 ``system.poll_gpu``, §3.6 ``gpu.stats``, §2.11 GPUStat JSON).

``nvidia_smi_readings()`` asks ``nvidia-smi`` on this host for every GPU; ``gpu_poll()`` stores one GPUStat row per
GPU and broadcasts each as ``gpu.stats`` on ``/ws/system``. Without the binary (or with ``GPU_MONITOR_ENABLED``
false) nothing runs and nothing is stored: the GPU fields of ``system.status`` are then null.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hsi.realtime import broadcast
from hsi.timeutils import utc_iso

logger = logging.getLogger("hsi.system.gpu")

NVIDIA_SMI_TIMEOUT_SECONDS = 2.0
QUERY = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization: float | None
    memory_used: int | None
    memory_total: int | None
    temperature: float | None
    power_usage: float | None


def monitoring_enabled() -> bool:
    return settings.GPU_MONITOR_ENABLED not in ("false", "0") and shutil.which("nvidia-smi") is not None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def _megabytes(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None else None


def _reading(line: str) -> GpuReading | None:
    fields = [part.strip() for part in line.split(",")]
    if len(fields) < 7 or _number(fields[0]) is None:
        return None
    return GpuReading(
        index=int(_number(fields[0])),
        name=fields[1],
        utilization=_number(fields[2]),
        memory_used=_megabytes(fields[3]),
        memory_total=_megabytes(fields[4]),
        temperature=_number(fields[5]),
        power_usage=_number(fields[6]),
    )


def nvidia_smi_readings() -> list[GpuReading]:
    """One reading per GPU, in index order; ``[]`` without the binary or when it fails or times out."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        completed = subprocess.run(
            [binary, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        logger.info("nvidia-smi did not answer", exc_info=True)
        return []
    readings = [_reading(line) for line in completed.stdout.splitlines() if line.strip()]
    return sorted((r for r in readings if r is not None), key=lambda r: r.index)


def inference_fps(now: dt.datetime | None = None) -> float:
    """Detector calls in the last minute / 60: files the detector finished in that minute (§8.3)."""
    from pipeline.models import IngestedFile

    since = (now or timezone.now()) - dt.timedelta(minutes=1)
    return round(IngestedFile.objects.filter(processed_at__gte=since).count() / 60, 3)


def gpu_stat_json(stat) -> dict:
    """GPUStat JSON of §2.11: also the data of ``gpu.stats``."""
    return {
        "gpu_name": stat.gpu_name,
        "utilization": stat.utilization,
        "memory_used": stat.memory_used,
        "memory_total": stat.memory_total,
        "temperature": stat.temperature,
        "power_usage": stat.power_usage,
        "inference_fps": stat.inference_fps,
        "recorded_at": utc_iso(stat.recorded_at),
    }


def gpu_poll(now: dt.datetime | None = None) -> list[int]:
    """Store one GPUStat per GPU of this host and broadcast each after commit; returns the ids stored."""
    from system.models import GPUStat

    if not monitoring_enabled():
        return []
    readings = nvidia_smi_readings()
    if not readings:
        return []
    now = now or timezone.now()
    fps = inference_fps(now)
    host = socket.gethostname()[:255]
    with transaction.atomic():
        stats = [
            GPUStat.objects.create(
                recorded_at=now,
                host=host,
                gpu_index=reading.index,
                gpu_name=reading.name[:255],
                utilization=reading.utilization,
                memory_used=reading.memory_used,
                memory_total=reading.memory_total,
                temperature=reading.temperature,
                power_usage=reading.power_usage,
                inference_fps=fps,
            )
            for reading in readings
        ]
        for stat in stats:
            broadcast("system", "gpu.stats", gpu_stat_json(stat))
    return [stat.id for stat in stats]
