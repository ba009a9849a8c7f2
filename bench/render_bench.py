"""Rendering speed: ms per frame of the built-in rasterizer, against a brute-force reference.

Prints, for the built-in schematic face and for a 28k-vertex FaceVerse-format mesh (the size of
FaceVerse v2, built by ``synthetic_faceverse`` and loaded through the real loader):

- ms per frame of the full mesh render (coefficients -> vertices -> flat shading -> z-buffer ->
  uint8 RGB) with 1 torch thread and with the default thread count, best of a few repeats;
- the same-run reference (built-in face only; for 56k triangles it takes minutes per frame): a
  brute-force z-buffer (every pixel tested against every triangle, in torch), its ms per frame,
  the speed-up, and the share of pixels on which both agree.

Target (issue 5): <= 30 ms per frame for the built-in face on 2 CPU cores.

Then, unless ``--pirender off``, the photo-realistic renderer: ms per frame of the REACT PIRender
network (random weights, 224 x 224, batch 8) with 1 and 2 torch threads (``--pirender only`` runs
just that part); then the FID Inception (``reactcli.metrics.inception``, random weights with
calibrated BatchNorm statistics, 224 x 224 frames as REACT's FID folders hold them, resized to 299
inside): images per second with 1 and 2 torch threads (``--fid-batch``, default 8; 0 skips it).

    .venv/bin/python bench/render_bench.py [--frames 96] [--device auto] [--pirender on|off|only] [--fid-batch 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reactcli.data.synth import face_stats
from reactcli.render.camera import Camera, flat_shade
from reactcli.render.face_model import FaceModel
from reactcli.render.faceverse import load_faceverse, synthetic_faceverse
from reactcli.render.pirender import IMAGE_SIZE, PIRender
from reactcli.render.raster import Fragments, MeshRenderer, shade_fragments
from reactcli.render.schematic import schematic_face
from reactcli.runtime import resolve_device


def coefficients(frames: int, seed: int = 0) -> np.ndarray:
    """Realistic 58-D sequences: the REACT mean face plus smooth noise of 0.7 std."""
    mean, std = face_stats()
    rng = np.random.default_rng(seed)
    noise = np.cumsum(rng.normal(0, 0.2, (frames, 58)), 0)
    noise = noise / max(1.0, np.abs(noise).max()) * 0.7
    return (mean + noise * std).astype(np.float32)


def brute_force(renderer: MeshRenderer, vertices: torch.Tensor) -> torch.Tensor:
    """Reference z-buffer: each pixel centre against every triangle (chunks of triangles)."""
    cam = renderer.camera
    xy, depth = cam.project(vertices)
    size, tri = cam.size, renderer.tri
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)
    frames = []
    for b in range(vertices.shape[0]):
        best = torch.full((size * size,), torch.inf)
        face = torch.full((size * size,), -1, dtype=torch.int64)
        for start in range(0, tri.shape[0], 256):
            t = tri[start : start + 256]
            p, z = xy[b, t], depth[b, t]  # (f, 3, 2), (f, 3)
            x0, x1, x2 = (p[:, k, 0:1] for k in range(3))
            y0, y1, y2 = (p[:, k, 1:2] for k in range(3))
            area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
            w0 = ((x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)) / area
            w1 = ((x0 - x2) * (cy - y2) - (y0 - y2) * (cx - x2)) / area
            w2 = 1 - w0 - w1
            inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (area.abs() > 1e-12)
            zpix = 1.0 / (w0 / z[:, 0:1] + w1 / z[:, 1:2] + w2 / z[:, 2:3])
            zpix = torch.where(inside, zpix, torch.inf)
            zmin, arg = zpix.min(0)
            closer = zmin < best
            best = torch.where(closer, zmin, best)
            face = torch.where(closer, arg + start, face)
        frames.append(face.view(size, size))
    face_index = torch.stack(frames)
    colors = flat_shade(vertices, tri, renderer.albedo if renderer.albedo is not None else 200.0 / 255.0)
    return shade_fragments(Fragments(face_index, torch.zeros_like(face_index, dtype=torch.float32)), colors)


def time_render(model: FaceModel, coeffs: np.ndarray, device: torch.device, threads: int, chunk: int) -> float:
    renderer = MeshRenderer(model.tri, Camera(), model.albedo, device=device, chunk=chunk)
    torch.set_num_threads(threads)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        renderer.render(model.vertices(torch.from_numpy(coeffs).to(device)))
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best / len(coeffs) * 1000.0


def bench(name: str, model: FaceModel, frames: int, device: torch.device, ref_frames: int) -> None:
    """Print the timings of one mesh; ``ref_frames = 0`` skips the brute-force reference."""
    default_threads = torch.get_num_threads()
    coeffs = coefficients(frames)
    model = model.to(device)
    ms1 = time_render(model, coeffs, device, 1, 8)
    msn = time_render(model, coeffs, device, default_threads, 16)
    torch.set_num_threads(default_threads)
    line = (
        f"{name:<34} {model.n_vertices:>6} verts {model.tri.shape[0]:>6} tris | "
        f"{ms1:6.2f} ms/frame (1 thread), {msn:6.2f} ms/frame ({default_threads} threads)"
    )
    if ref_frames == 0:
        print(line)
        return
    renderer = MeshRenderer(model.tri.cpu(), Camera(), None if model.albedo is None else model.albedo.cpu())
    verts = model.to("cpu").vertices(torch.from_numpy(coeffs[:ref_frames]))
    start = time.perf_counter()
    reference = brute_force(renderer, verts)
    ms_ref = (time.perf_counter() - start) / ref_frames * 1000.0
    ours = renderer.render(verts)
    agree = (ours == reference).all(-1).float().mean().item() * 100
    print(
        f"{line} | brute force {ms_ref:8.1f} ms/frame -> {ms_ref / min(ms1, msn):6.0f}x faster, "
        f"pixels agree {agree:.3f}%"
    )


def bench_pirender(device: torch.device, batch: int = 8, repeats: int = 2) -> None:
    """PIRender ms per frame (best of ``repeats`` batches) with 1 and 2 threads, random weights."""
    torch.manual_seed(0)
    model = PIRender().eval().to(device)
    reference = (torch.rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1).to(device)
    driving = torch.randn(batch, 58, 27).to(device)
    default_threads = torch.get_num_threads()
    figures = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = float("inf")
        with torch.no_grad():
            for _ in range(repeats):
                start = time.perf_counter()
                model(reference, driving)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
        figures.append(f"{best / batch * 1000.0:8.1f} ms/frame ({threads} thread{'s' if threads > 1 else ''})")
    torch.set_num_threads(default_threads)
    print(f"{'PIRender (random weights)':<34} {IMAGE_SIZE} x {IMAGE_SIZE}, batch {batch} | " + ", ".join(figures))


def bench_inception(batch: int, device: torch.device, repeats: int = 2) -> None:
    """Images per second of the FID Inception (features of 224 x 224 frames), 1 and 2 threads."""
    from reactcli.metrics.inception import FIDInceptionV3

    default_threads = torch.get_num_threads()
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for module in model.modules():  # running stats from one batch, so activations stay O(1)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        model.train()(torch.rand(4, 3, 64, 64))
    model = model.eval().to(device)
    frames = torch.rand(batch, 3, 224, 224, device=device)
    rates = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = float("inf")
        with torch.no_grad():
            model(frames[:1])  # warm-up
            for _ in range(repeats):
                start = time.perf_counter()
                model(frames)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
        rates.append(batch / best)
    torch.set_num_threads(default_threads)
    print(
        f"{'FID Inception (224 -> 299)':<34} batch {batch:>3} | "
        f"{rates[0]:6.2f} images/s (1 thread), {rates[1]:6.2f} images/s (2 threads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--ref-frames", type=int, default=1, help="frames for the (slow) brute-force reference")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pirender", choices=["on", "off", "only"], default="on", help="the PIRender section")
    parser.add_argument("--fid-batch", type=int, default=8, help="images per Inception batch (0 skips it)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.pirender == "only":
        bench_pirender(device)
        return
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, 224 x 224, official camera")
    bench("built-in schematic face", schematic_face(), args.frames, device, args.ref_frames)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "faceverse_like.npy"
        np.save(path, np.array(synthetic_faceverse(168), dtype=object), allow_pickle=True)
        bench("28k-vertex FaceVerse-format mesh", load_faceverse(path), max(16, args.frames // 3), device, 0)
    print("target: <= 30 ms/frame for the built-in face on 2 CPU cores")
    if args.pirender == "on":
        bench_pirender(device)
    if args.fid_batch > 0:
        bench_inception(args.fid_batch, device)


if __name__ == "__main__":
    main()
