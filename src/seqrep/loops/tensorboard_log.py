"""TensorBoard event files beside a run's metrics.jsonl (``--tensorboard``): every numeric
field of every logged record as a scalar, and the report's figures as images when the run ends.

:class:`~seqrep.loops.runs.RunDir` feeds it from the one place a run logs, so nothing is logged
twice. The step of a record is its ``env_step``, ``step`` or ``iteration`` (the first present),
else its line number in metrics.jsonl. A resumed run drops the steps logged after its
checkpoint from the event files (TensorBoard's ``purge_step``), as it does from metrics.jsonl.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

from seqrep.options import require_extra

__all__ = ["STEP_KEYS", "TensorBoardLog", "record_step"]

STEP_KEYS = ("env_step", "step", "iteration")


def record_step(record: dict[str, Any], index: int) -> int:
    """The x-axis value of ``record``: its first step field, else ``index``."""
    for key in STEP_KEYS:
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return index


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    """Every finite number in ``record`` (lists of numbers as ``key/i``), step fields aside."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in STEP_KEYS:
            continue
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out[key if len(values) == 1 and value is v else f"{key}/{i}"] = float(v)
    return out


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class TensorBoardLog:
    """One run folder's event files, under ``folder``.

    Args:
        folder: where the event files go (``RUN/tensorboard``).
        purge_step: on a resume, the first step the run will log again: events at or past
            it from before the interruption are discarded (None for a fresh run).
        first_index: the line number in metrics.jsonl of the next record.

    Raises:
        ImportError: tensorboard is not installed (``pip install 'seqrep[tensorboard]'``).
    """

    def __init__(self, folder: Path, purge_step: int | None = None, first_index: int = 0) -> None:
        require_extra("tensorboard", "--tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)
        self.index, self.last_step = first_index, purge_step or 0

    def add_record(self, record: dict[str, Any]) -> None:
        """Each number of one metrics record as a scalar at the record's step."""
        step = record_step(record, self.index)
        for tag, value in _scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        self.index += 1
        self.last_step = max(self.last_step, step)

    def add_figures(self, folder: Path) -> int:
        """Every PNG in ``folder`` (the report's figures) as an image at the last step; returns
        how many. The PNG bytes go in as they are (TensorBoard decodes them)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        figures = sorted(folder.glob("*.png"))
        for png in figures:
            data = png.read_bytes()
            width, height = _png_size(data)
            image = Summary.Image(
                height=height, width=width, colorspace=4, encoded_image_string=data
            )
            summary = Summary(value=[Summary.Value(tag=f"figures/{png.stem}", image=image)])
            self.writer._get_file_writer().add_summary(summary, self.last_step)
        self.writer.flush()
        return len(figures)

    def close(self) -> None:
        self.writer.close()
