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

Batching changes nothing but float rounding (the network has no batch statistics; the convolution
kernels may sum in another order for another batch size, which can move a pixel by one), so
``batch`` only trades memory for speed.

Two editions, two :class:`PhotoProtocol` s. REACT 2024 (:data:`REACT_2024`): short side to 256, crop
224, the raw coefficients as they are. REACT 2025/2026 on MARS (:func:`mars_protocol`), as the one
readable MARS renderer (CaReDiff's ``utils/render.py``, with the dataset's ``Transform(224, 224)``)
does it: short side to **224**, crop 224 (the 384 x 384 face crops are only scaled), and the
translation z handed to PIRender **minus mean_face[57]** (about 1.84): that renderer de-normalises
its model's output with ``transform_reverse`` and then subtracts the mean translation z once more
before FaceVerse and PIRender. Raw predictions skip the first step, so only the subtraction is left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reactcli.data.loaders import iter_video_frames
from reactcli.errors import file_error
from reactcli.render.pirender import IMAGE_SIZE, PIRender, driving_windows, load_pirender, to_uint8
from reactcli.vocab import TRANSLATION

#: Short side after the official resize, before the centre crop to ``IMAGE_SIZE`` (REACT 2024).
RESIZE = 256
#: MARS: the dataset transform resizes the short side straight to the crop size.
MARS_RESIZE = IMAGE_SIZE
#: The coefficient of translation z.
TRANSLATION_Z = TRANSLATION.stop - 1


@dataclass(frozen=True)
class PhotoProtocol:
    """How an edition's official renderer feeds PIRender: the image transform's short side
    (``resize``, then a centre crop to 224) and a constant subtracted from translation z."""

    name: str
    resize: int = RESIZE
    translation_z_offset: float = 0.0

    def describe(self) -> str:
        text = f"reference and real frames Resize {self.resize} + CenterCrop {IMAGE_SIZE}"
        if self.translation_z_offset:
            text += f", translation z minus mean_face[57] = {self.translation_z_offset:.4f} before PIRender"
        return text

    def driving(self, coeffs: np.ndarray) -> np.ndarray:
        """The (T, 58) coefficients PIRender is driven with (unchanged when there is no offset)."""
        if not self.translation_z_offset:
            return coeffs
        out = np.array(coeffs, dtype=np.float32)
        out[:, TRANSLATION_Z] -= np.float32(self.translation_z_offset)
        return out


#: REACT 2024's renderer: Resize 256 + CenterCrop 224, raw coefficients.
REACT_2024 = PhotoProtocol("react2024")


def mars_protocol(shift_translation: bool = True) -> PhotoProtocol:
    """REACT 2025/2026's (module docstring): Resize 224 + CenterCrop 224 and, unless
    ``shift_translation`` is off, translation z minus the organisers' mean_face[57]."""
    if not shift_translation:
        return PhotoProtocol("mars-unshifted", MARS_RESIZE, 0.0)
    from reactcli.render.face_space import packaged_face_stats

    mean, _ = packaged_face_stats()
    return PhotoProtocol("mars", MARS_RESIZE, float(mean[TRANSLATION_Z]))


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


def real_frame(frame: np.ndarray, resize: int = RESIZE) -> np.ndarray:
    """A ground-truth video frame as the FID protocol saves it: transform, normalise, back to uint8.

    The round trip through [-1, 1] and truncation can turn a pixel value into its neighbour below
    (float rounding), as it does in the official script; keeping it makes the real side's pixels
    the official ones, not merely close to them.
    """
    return to_uint8(to_model_input(resize_center_crop(frame, resize)[None]))[0]


def first_video_frame(path: Path) -> np.ndarray:
    """Frame 0 of an mp4 or a frame folder, (H, W, 3) uint8; an empty video is an error naming it."""
    with contextlib.closing(iter_video_frames(path, chunk=1)) as chunks:
        first = next(chunks, None)
    if first is None or len(first) == 0:
        raise file_error(path, "video has no frames (the photo renderer's reference image is its first frame)")
    return first[0]


def iter_video_picks(path: Path, indices: Iterable[int], chunk: int = 32) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` for each of ``indices`` in increasing order, decoded in one streaming pass
    (memory: one chunk of the video, whatever its length; decoding stops after the last index).

    A video shorter than the largest index is an error naming the file and both numbers, since
    the FID protocol would otherwise compare a different set of frames than it claims.
    """
    wanted = sorted(set(indices))
    if not wanted:
        return
    position, next_pick = 0, 0
    with contextlib.closing(iter_video_frames(path, chunk)) as chunks:
        for block in chunks:
            while next_pick < len(wanted) and wanted[next_pick] < position + len(block):
                yield wanted[next_pick], block[wanted[next_pick] - position].copy()
                next_pick += 1
            position += len(block)
            if next_pick == len(wanted):
                return
    raise file_error(path, f"video has {position} frames, but frame {wanted[-1]} is needed")


def pick_video_frames(path: Path, indices: Iterable[int], chunk: int = 32) -> dict[int, np.ndarray]:
    """The frames at ``indices`` of a video, all at once (:func:`iter_video_picks` keeps one at a time)."""
    return dict(iter_video_picks(path, indices, chunk))


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
        self,
        model: PIRender,
        device: torch.device | str = "cpu",
        batch: int = 8,
        path: Path | None = None,
        protocol: PhotoProtocol = REACT_2024,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch = max(1, int(batch))
        self.path = path  # the weights file, so outputs older than it count as stale
        self.protocol = protocol

    @classmethod
    def load(
        cls, path: Path, device: torch.device | str = "cpu", batch: int = 8, protocol: PhotoProtocol = REACT_2024
    ) -> PhotoRenderer:
        """Load ``cur_model_fold.pth`` strictly (one-line errors naming the file, see ``load_pirender``)."""
        return cls(load_pirender(path, device), device, batch, Path(path), protocol)

    def reference(self, frame: np.ndarray) -> torch.Tensor:
        """(1, 3, 224, 224) reference tensor on the device from an (H, W, 3) uint8 frame."""
        return to_model_input(resize_center_crop(frame, self.protocol.resize)[None]).to(self.device)

    def real(self, frame: np.ndarray) -> np.ndarray:
        """A ground-truth frame as this protocol's FID saves it (:func:`real_frame`)."""
        return real_frame(frame, self.protocol.resize)

    @torch.no_grad()
    def iter_frames(
        self, coeffs: np.ndarray, reference: torch.Tensor, frames: Sequence[int]
    ) -> Iterator[np.ndarray]:
        """(b, 224, 224, 3) uint8 batches of the given frames of a clip of (T, 58) raw coefficients."""
        frames = list(frames)
        coeffs = self.protocol.driving(coeffs)
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
    "MARS_RESIZE",
    "REACT_2024",
    "RESIZE",
    "PhotoProtocol",
    "PhotoRenderer",
    "first_video_frame",
    "iter_video_picks",
    "mars_protocol",
    "pick_video_frames",
    "read_reference_image",
    "real_frame",
    "resize_center_crop",
    "to_model_input",
]
