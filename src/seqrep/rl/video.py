"""Episode videos: frames written to MP4 with imageio's ffmpeg plugin (the ``imageio-ffmpeg``
package brings its own ffmpeg binary, so no system ffmpeg is needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["require_video_writer", "write_video"]


def require_video_writer() -> None:
    """Raise ImportError, naming the extra to install, unless MP4s can be written here."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg  # noqa: F401 - the ffmpeg binary imageio writes MP4 with
    except ImportError as e:
        raise ImportError(
            f"writing videos needs imageio-ffmpeg ({e}): pip install 'seqrep[pixels]'"
        ) from e


def write_video(
    path: str | Path, frames: Sequence[np.ndarray], fps: float = 25.0, scale: int = 1
) -> Path:
    """Write ``frames`` (each uint8 [H, W, 3], or [3, H, W]) as an H.264 MP4 playable in any
    browser, each side enlarged ``scale`` times (nearest pixel: small renders stay crisp).
    The file appears whole or not at all (written beside it, then renamed).

    Raises:
        ValueError: no frames, or frames of different shapes.
        ImportError: imageio-ffmpeg is missing (``pip install 'seqrep[pixels]'``).
    """
    require_video_writer()
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("no frames to write")
    images = [f.transpose(1, 2, 0) if f.shape[0] == 3 and f.shape[-1] != 3 else f for f in frames]
    if len({im.shape for im in images}) > 1:
        raise ValueError(f"frames of different shapes: {sorted({im.shape for im in images})}")
    if scale > 1:
        images = [im.repeat(scale, axis=0).repeat(scale, axis=1) for im in images]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".tmp" + target.suffix)  # ffmpeg picks by suffix
    try:
        # yuv420p (what browsers play) needs even sides; macro_block_size=2 pads odd ones.
        with imageio.get_writer(
            tmp, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2
        ) as writer:
            for im in images:
                # imageio types get_writer as its base class, which lacks append_data
                writer.append_data(np.ascontiguousarray(im, dtype=np.uint8))  # type: ignore[attr-defined]
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
