"""The FID Inception network of pytorch-fid 0.3.0 in plain torch, and FID between image folders.

Why our own: pytorch-fid builds its network from torchvision's ``Inception3``, and torchvision
must not be installed next to the project's CPU torch. The module and attribute names below are
the ones of the released weights file ``pt_inception-2015-12-05-6726825d.pth`` (torchvision
naming, 566 keys), so that file loads with a strict ``load_state_dict``. The three FID "patches"
are built in: average pools that ignore padded zeros, and a max pool (not an average) before
``Mixed_7c.branch_pool``. The preprocessing (bilinear resize to 299 x 299 of the float [0, 1]
image, no antialias, then 2x - 1) is pytorch-fid's, so the numbers equal ``python -m pytorch_fid``
on the same folders up to float rounding. The weights are never downloaded: the user gives a path.

See docs/fid.md for the facts this rebuild follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reactcli.errors import ReactError, file_error
from reactcli.torch_files import load_weights_only

#: File endings pytorch-fid reads from a folder; the match is case-sensitive (as on Linux).
IMAGE_EXTENSIONS: tuple[str, ...] = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")
#: The side the network sees; every image is resized to it inside :meth:`FIDInceptionV3.forward`.
INCEPTION_SIZE = 299
#: Length of the pool3 feature FID is computed on.
FEATURE_DIM = 2048
#: The official weights file name (pytorch-fid's release asset, tag ``fid_weights``).
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"

_Size = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU: the only building block that has weights."""

    def __init__(self, cin: int, cout: int, kernel: _Size, stride: _Size = 1, padding: _Size = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that does not count padded zeros (the FID network's pool patch)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d: 1x1, 5x5, double 3x3 and pooled branches at 35 x 35."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    """Mixed_6a: the 35 -> 17 reduction (two strided conv branches and a max pool of the input)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 branches at 17 x 17; ``c7`` is the inner width."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    """Mixed_7a: the 17 -> 8 reduction."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """Mixed_7b/7c at 8 x 8; ``max_pool`` selects the FID quirk of Mixed_7c (max, not average)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([a, b, c, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception up to its 2048-d pool3 feature.

    ``fc`` (2048 -> 1008) is kept only so that the official file loads strictly; FID never uses it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) in [-1, 1] -> (B, 2048): the network proper, with no preprocessing."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, 2048) pool3 features, preprocessed as pytorch-fid does."""
        return self.features(preprocess(images))


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's input step: bilinear resize of the float image to 299 x 299, then [0, 1] -> [-1, 1].

    No antialias and no rounding to uint8 in between: other FID tools differ exactly here, which
    is why their numbers are not interchangeable with pytorch-fid's.
    """
    x = F.interpolate(images, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return (2 * x - 1).contiguous()


def inception_keys() -> list[str]:
    """The 566 state-dict keys of the weights file, in its order."""
    return list(FIDInceptionV3().state_dict().keys())


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Build the network and load the user's ``pt_inception-2015-12-05-6726825d.pth`` strictly.

    Only the 94 ``num_batches_tracked`` counters may be missing (they do nothing in eval mode and
    the file may not carry them). Every problem is one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, f"FID Inception weights file not found (get {WEIGHTS_NAME} from pytorch-fid's "
                               "GitHub release 'fid_weights')")
    state = load_weights_only(path, "a torch weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise file_error(path, "not a plain state dict of tensors (expected the FID Inception weights, "
                               f"{WEIGHTS_NAME})")
    model = FIDInceptionV3()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise file_error(path, f"not the FID Inception weights: {len(missing)} missing keys "
                               f"{_first(missing)}, {len(unexpected)} unexpected keys {_first(unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if wrong:
        raise file_error(path, f"not the FID Inception weights: {len(wrong)} tensors of the wrong shape, "
                               f"first {'; '.join(wrong[:3])}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def _first(keys: Sequence[str], n: int = 3) -> str:
    return "[" + ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") + "]"


def list_images(folder: str | Path) -> list[Path]:
    """The images pytorch-fid would read from ``folder``: known endings (case-sensitive), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise file_error(folder, "image folder not found")
    files = sorted({p for ext in IMAGE_EXTENSIONS for p in folder.glob(f"*.{ext}") if p.is_file()})
    if len(files) < 2:
        raise file_error(folder, f"found {len(files)} image(s) ({', '.join(IMAGE_EXTENSIONS)}); "
                                 "FID needs at least 2 per folder")
    return files


def read_image(path: str | Path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1], decoded as pytorch-fid does (PIL, converted to RGB, / 255)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - a broken image is the user's to fix
        raise file_error(path, f"cannot read image ({type(exc).__name__}: {exc})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0)


@torch.no_grad()
def image_features(
    files: Sequence[Path],
    model: FIDInceptionV3,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(N, 2048) float64 pool3 features of ``files``, in file order.

    Images of one batch may differ in size: each is resized to 299 x 299 on its own before the
    batch is stacked. Features do not depend on the batch (eval mode, per-sample ops), so this
    gives what pytorch-fid gives with any batch size that its stacking would accept.
    """
    model.eval()
    out = np.empty((len(files), FEATURE_DIM), dtype=np.float64)
    step = max(1, min(batch_size, len(files)))
    for start in range(0, len(files), step):
        chunk = files[start : start + step]
        batch = torch.cat([preprocess(read_image(p).unsqueeze(0).to(device)) for p in chunk])
        out[start : start + len(chunk)] = model.features(batch).double().cpu().numpy()
        if on_progress is not None:
            on_progress(len(chunk))
    return out


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """pytorch-fid's Frechet distance of two feature sets; a badly complex root becomes a ReactError."""
    from reactcli.metrics.realism import frechet_distance_features

    try:
        return frechet_distance_features(real, fake)
    except ValueError as exc:
        raise ReactError(f"FID: {exc} (the covariance product has no real square root)") from None


def fid_of_folders(
    real_dir: str | Path,
    fake_dir: str | Path,
    model: FIDInceptionV3,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    on_progress: Callable[[int], None] | None = None,
    files: tuple[Sequence[Path], Sequence[Path]] | None = None,
) -> dict[str, object]:
    """FID between two image folders, with the facts a results table needs (counts, extractor)."""
    real_files, fake_files = files if files is not None else (list_images(real_dir), list_images(fake_dir))
    real = image_features(real_files, model, batch_size, device, on_progress)
    fake = image_features(fake_files, model, batch_size, device, on_progress)
    return {
        "fid": fid_from_features(real, fake),
        "real_dir": str(real_dir),
        "fake_dir": str(fake_dir),
        "real_images": len(real_files),
        "fake_images": len(fake_files),
        "dims": FEATURE_DIM,
        "extractor": "pytorch-fid 0.3.0 InceptionV3 pool3 (torch-only rebuild, bilinear 299, no antialias)",
    }
