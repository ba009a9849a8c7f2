"""Photo-realistic listener frames from 3DMM coefficients, driven the way the REACT renderer drives PIRender.

:mod:`reactcli.render.pirender` is the network; this module is the protocol around it, shared by
``react render --photo`` (a video panel) and FRRea in ``react evaluate`` (PNG frames for the FID),
so both see exactly the same pixels:

- the **reference image** is one frame (the first frame of the listener's own ground-truth video,
  or a user's PNG) put through the official image transform: short side resized to 256 with PIL's
  bilinear filter, centre crop 224, ``/ 255``, then ``(x - 0.5) / 0.5``;
- frame ``t`` is rendered from the 27-frame window ``t - 13 .. t + 13`` of the *whole* clip, clamped
  at its ends, so a preview of the first frames shows the frames a full render would;
- outputs become pixels by truncation (``to_uint8``), and the real FID frames take the same
  round trip (transform, normalise, back to uint8), as the official script saves them.

Batching changes nothing (the network has no batch statistics), so ``batch`` only trades memory
for speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from reactcli.data.loaders import iter_video_frames
from reactcli.errors import file_error
from reactcli.render.pirender import IMAGE_SIZE, PIRender, driving_windows, load_pirender, to_uint8

#: Short side after the official resize, before the centre crop to ``IMAGE_SIZE``.
RESIZE = 256


def resize_center_crop(frame: np.ndarray, resize: int = RESIZE, crop: int = IMAGE_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> (crop, crop, 3) uint8: short side to ``resize`` (PIL bilinear), centre crop.

    This is what torchvision's ``Resize(256)`` + ``CenterCrop(224)`` do to a PIL image (the long
    side is truncated to an int, the crop offset rounded half to even), written out so that no
    torchvision is needed. PIL's bilinear filter widens its support when it shrinks, so a large
    video frame is low-pass filtered exactly as in the official pipeline.
    """
    from PIL import Image

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    image = Image.fromarray(frame)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return np.array(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)  # writable, for torch


def to_model_input(frames: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 in [-1, 1]: ``/ 255`` then ``(x - 0.5) / 0.5``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)
    return ((x - 0.5) / 0.5).contiguous()


def real_frame(frame: np.ndarray) -> np.ndarray:
    """A ground-truth video frame as the FID protocol saves it: transform, normalise, back to uint8.

    The round trip through [-1, 1] and truncation can turn a pixel value into its neighbour below
    (float rounding), as it does in the official script; keeping it makes the real side's pixels
    the official ones, not merely close to them.
    """
    return to_uint8(to_model_input(resize_center_crop(frame)[None]))[0]


def first_video_frame(path: Path) -> np.ndarray:
    """Frame 0 of an mp4 or a frame folder, (H, W, 3) uint8; an empty video is an error naming it."""
    with contextlib.closing(iter_video_frames(path, chunk=1)) as chunks:
        first = next(chunks, None)
    if first is None or len(first) == 0:
        raise file_error(path, "video has no frames (the photo renderer's reference image is its first frame)")
    return first[0]


def pick_video_frames(path: Path, indices: Iterable[int], chunk: int = 32) -> dict[int, np.ndarray]:
    """The frames at ``indices`` of a video, decoded in one streaming pass (memory: one chunk).

    A video shorter than the largest index is an error naming the file and both numbers, since
    the FID protocol would otherwise compare a different set of frames than it claims.
    """
    wanted = sorted(set(indices))
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    position = 0
    with contextlib.closing(iter_video_frames(path, chunk)) as chunks:
        for block in chunks:
            for i in range(len(block)):
                if position + i in wanted:
                    found[position + i] = block[i].copy()
            position += len(block)
            if position > wanted[-1]:
                break
    if len(found) < len(wanted):
        raise file_error(path, f"video has {position} frames, but frame {wanted[-1]} is needed")
    return found


def read_reference_image(path: Path) -> np.ndarray:
    """A user's reference image (PNG, JPG, ...) as (H, W, 3) uint8 RGB; unreadable is one line naming it."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise file_error(path, "reference image not found")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a file that is not an image
        raise file_error(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    if min(rgb.shape[:2]) < 2:
        raise file_error(path, f"image is {rgb.shape[1]} x {rgb.shape[0]} pixels, too small for a reference")
    return rgb


class PhotoRenderer:
    """A loaded PIRender on a device, rendering batches of frames of one clip at a time."""

    def __init__(
        self, model: PIRender, device: torch.device | str = "cpu", batch: int = 8, path: Path | None = None
    ) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch = max(1, int(batch))
        self.path = path  # the weights file, so outputs older than it count as stale

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "cpu", batch: int = 8) -> PhotoRenderer:
        """Load ``cur_model_fold.pth`` strictly (one-line errors naming the file, see ``load_pirender``)."""
        return cls(load_pirender(path, device), device, batch, Path(path))

    def reference(self, frame: np.ndarray) -> torch.Tensor:
        """(1, 3, 224, 224) reference tensor on the device from an (H, W, 3) uint8 frame."""
        return to_model_input(resize_center_crop(frame)[None]).to(self.device)

    @torch.no_grad()
    def iter_frames(
        self, coeffs: np.ndarray, reference: torch.Tensor, frames: Sequence[int]
    ) -> Iterator[np.ndarray]:
        """(b, 224, 224, 3) uint8 batches of the given frames of a clip of (T, 58) raw coefficients."""
        frames = list(frames)
        for start in range(0, len(frames), self.batch):
            chosen = frames[start : start + self.batch]
            driving = driving_windows(coeffs, chosen).to(self.device)
            ref = reference.expand(len(chosen), -1, -1, -1)
            yield to_uint8(self.model(ref, driving)["fake_image"])

    def render(self, coeffs: np.ndarray, reference: torch.Tensor, frames: Sequence[int]) -> np.ndarray:
        """All the given frames at once, (len(frames), 224, 224, 3) uint8."""
        out = list(self.iter_frames(coeffs, reference, frames))
        if not out:
            return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        return np.concatenate(out)


__all__ = [
    "RESIZE",
    "PhotoRenderer",
    "first_video_frame",
    "pick_video_frames",
    "read_reference_image",
    "real_frame",
    "resize_center_crop",
    "to_model_input",
]
