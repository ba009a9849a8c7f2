"""`react live` over a loopback WebSocket: server time per frame, end-to-end latency and drops.

The server runs in its own process (as `react live` does) with random weights: speed does not
depend on training. A client paced at 25 fps streams for ``--seconds`` (default 60) and measures,
per frame, the arrival latency (input sent -> listener frame received) and the shown latency of a
page with the 2-frame jitter buffer (a frame is shown 80 ms after capture, or on arrival if later);
a frame that misses its display slot by more than one frame period is dropped, as on the page.

Modes: ``mic`` sends 640-sample chunks of a synthetic voice (needs reactcli.live.audio_stream);
``replay`` sends ticks through a synthetic clip of random features (the only mode for the paper
preset: its wav2vec2 features stream live too, but need a local wav2vec2 folder, which a bench
with random weights does not have). Targets on 2 cores, tiny preset: server
<= 20 ms per frame, end-to-end p95 <= 150 ms, 0 drops over 60 s.

    .venv/bin/python bench/live_bench.py [--seconds 60] [--samples 3] [--threads 1] [--presets tiny,paper]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reactcli.live import protocol as P  # noqa: E402
from reactcli.vocab import EMOTION_DIM, FACE_DIM, FPS  # noqa: E402

JITTER_FRAMES = 2
PERIOD_MS = 1000.0 / FPS


class SyntheticReplay:
    """One clip of random speaker features and listener ground truth, in the ReplayData interface."""

    def __init__(self, audio_dim: int, frames: int) -> None:
        from reactcli.live.replay import ReplayClip

        rng = np.random.default_rng(0)
        self.clips = [ReplayClip(0, "synthetic", "synthetic", None, None)]
        self._clip = {
            "speaker_audio": rng.normal(size=(frames, audio_dim)).astype(np.float32),
            "speaker_3dmm": (rng.normal(size=(frames, FACE_DIM)) * 0.1).astype(np.float32),
            "speaker_emotion": rng.random((frames, EMOTION_DIM)).astype(np.float32),
            "listener_3dmm": np.zeros((frames, FACE_DIM), np.float32),
            "listener_emotion": np.zeros((frames, EMOTION_DIM), np.float32),
        }

    def __len__(self) -> int:
        return 1

    def clip(self, index: int) -> dict[str, np.ndarray]:
        return self._clip


def _serve(preset: str, port: int, samples: int, threads: int, frames: int) -> None:
    import torch
    from generate_bench import AUDIO_DIM, build

    from reactcli.live.server import LiveSettings, create_app, serve

    torch.set_num_threads(threads)
    model = build(preset)
    replay = SyntheticReplay(AUDIO_DIM[preset], frames)
    serve(create_app(model, LiveSettings(samples=samples, seed=0), replay), "127.0.0.1", port)


def wait_for(port: int, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def voice(frames: int) -> np.ndarray:
    """A synthetic voice: a gliding harmonic tone with syllable-like bursts and a little noise."""
    t = np.arange(frames * P.CHUNK) / P.MIC_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / P.MIC_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    rng = np.random.default_rng(0)
    return (0.2 * tone * envelope + 0.01 * rng.normal(size=t.shape)).astype(np.float32).reshape(frames, P.CHUNK)


async def client(port: int, mode: str, frames: int) -> dict:
    import websockets

    sent: dict[int, float] = {}
    arrival: dict[int, float] = {}
    server_ms: list[float] = []
    audio = voice(frames) if mode == "mic" else None
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=1 << 24) as ws:
        await ws.send(json.dumps({"type": "start", "mode": mode, "clip": 0}))
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            raise RuntimeError(f"server refused the session: {ready}")

        async def receive() -> None:
            while len(arrival) < frames:
                data = await ws.recv()
                if isinstance(data, str):
                    continue
                msg = P.decode(data, max_bytes=1 << 24)
                now = time.perf_counter() * 1e3
                server_ms.append(msg.aux / msg.frames)
                for j in range(msg.frames):
                    arrival[msg.frame + j] = now

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        for i in range(frames):
            if receiver.done():
                break  # the server closed the session (the reason is raised below)
            await asyncio.sleep(max(0.0, t0 + (i + 1) / FPS - time.perf_counter()))
            now = time.perf_counter() * 1e3
            if mode == "mic":
                values, kind = audio[i : i + 1], P.MsgType.AUDIO
            else:
                values, kind = np.zeros((1, 0), np.float32), P.MsgType.TICK
            sent[i] = now
            await ws.send(P.encode(P.Message(kind, i, i, now, values)))
        await asyncio.wait_for(receiver, timeout=30)
    latency = np.array([arrival[i] - sent[i] for i in range(frames)])
    shown = np.maximum(latency, JITTER_FRAMES * PERIOD_MS)
    late = np.flatnonzero(latency > (JITTER_FRAMES + 1) * PERIOD_MS)
    return {"server_ms": np.array(server_ms), "latency": latency, "shown": shown, "dropped": len(late), "late": late}


def run(preset: str, mode: str, seconds: float, samples: int, threads: int) -> dict:
    from reactcli.live.server import free_port

    frames = int(seconds * FPS)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_serve, args=(preset, port, samples, threads, frames + FPS), daemon=True)
    proc.start()
    try:
        wait_for(port)
        return asyncio.run(client(port, mode, frames))
    finally:
        proc.terminate()
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=3, help="reactions per frame (react live's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (react live's default)")
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--modes", default="mic,replay", help="modes for tiny (paper runs replay only)")
    args = parser.parse_args()
    import websockets

    print(
        f"react live, loopback WebSocket, {args.seconds:g} s at {FPS} fps, K = {args.samples}, "
        f"{args.threads} torch threads, random weights; targets (tiny): server <= 20 ms/frame, "
        f"end-to-end p95 <= 150 ms, 0 drops"
    )
    print(
        f"{'preset':7s} {'mode':7s} {'server ms/frame':>16s} {'server p95':>11s} {'arrival p50':>12s} "
        f"{'arrival p95':>12s} {'shown p95':>10s} {'dropped':>8s}"
    )
    for preset in args.presets.split(","):
        for mode in args.modes.split(",") if preset == "tiny" else ["replay"]:
            try:
                r = run(preset, mode, args.seconds, args.samples, args.threads)
            except websockets.ConnectionClosed as exc:
                print(f"{preset:7s} {mode:7s} session closed by the server: {exc.reason}")
                continue
            print(
                f"{preset:7s} {mode:7s} {r['server_ms'].mean():16.1f} {np.percentile(r['server_ms'], 95):11.1f} "
                f"{np.percentile(r['latency'], 50):12.1f} {np.percentile(r['latency'], 95):12.1f} "
                f"{np.percentile(r['shown'], 95):10.1f} {r['dropped']:8d}"
                + (f"  (frames {', '.join(map(str, r['late'][:6]))})" if r["dropped"] else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
