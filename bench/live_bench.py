"""`react live` over a loopback WebSocket: server time per frame, end-to-end latency and drops.

The server runs in its own process (as `react live` does) with random weights: speed does not
depend on training. ``--sessions N`` clients, each paced at 25 fps, stream at the same time for
``--seconds`` (default 60) and measure, per frame, the arrival latency (input sent -> listener
frame received) and the shown latency of a page with the 2-frame jitter buffer (a frame is shown
80 ms after capture, or on arrival if later); a frame that misses its display slot by more than one
frame period is dropped, as on the page, and so is every frame of a session after the server shed
it. A sweep over ``--sessions 1,2,3,4`` is what `react live --max-sessions`'s default rests on.

Modes: ``mic`` sends 640-sample chunks of a synthetic voice (needs reactcli.live.audio_stream);
``replay`` sends ticks through a synthetic clip of random features (the only mode for the paper
preset: its wav2vec2 features stream live too, but need a local wav2vec2 folder, which a bench
with random weights does not have). Targets on 2 cores, tiny preset: server
<= 20 ms per frame, end-to-end p95 <= 150 ms, 0 drops over 60 s.

    .venv/bin/python bench/live_bench.py [--seconds 60] [--samples K] [--threads 1] [--presets tiny,paper]
                                         [--modes mic,replay] [--sessions 1,2,3,4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def _serve(preset: str, port: int, samples: int | None, threads: int, frames: int, sessions: int) -> None:
    import torch
    from generate_bench import AUDIO_DIM, build

    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import create_app, serve

    torch.set_num_threads(threads)
    model = build(preset)
    replay = SyntheticReplay(AUDIO_DIM[preset], frames)
    k = samples or model.config.generation.samples  # react live's default: the preset's generation.samples
    settings = LiveSettings(samples=k, seed=0, max_sessions=sessions)
    serve(create_app(model, settings, replay), "127.0.0.1", port)


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
    """One paced session; a session the server closes (shed) keeps what arrived and its reason."""
    import websockets

    sent: dict[int, float] = {}
    arrival: dict[int, float] = {}
    server_ms: list[float] = []
    closed: list[str] = []
    audio = voice(frames) if mode == "mic" else None
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=1 << 24) as ws:
        await ws.send(json.dumps({"type": "start", "mode": mode, "clip": 0}))
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            raise RuntimeError(f"server refused the session: {ready}")

        async def receive() -> None:
            try:
                while len(arrival) < frames:
                    data = await ws.recv()
                    if isinstance(data, str):
                        message = json.loads(data)
                        if message["type"] == "error":
                            closed.append(message["message"])
                        continue
                    msg = P.decode(data, max_bytes=1 << 24)
                    now = time.perf_counter() * 1e3
                    server_ms.append(msg.aux / msg.frames)
                    for j in range(msg.frames):
                        arrival[msg.frame + j] = now
            except websockets.ConnectionClosed as exc:
                closed.append(exc.reason or str(exc))

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        for i in range(frames):
            if receiver.done():
                break  # the server closed the session
            await asyncio.sleep(max(0.0, t0 + (i + 1) / FPS - time.perf_counter()))
            now = time.perf_counter() * 1e3
            if mode == "mic":
                values, kind = audio[i : i + 1], P.MsgType.AUDIO
            else:
                values, kind = np.zeros((1, 0), np.float32), P.MsgType.TICK
            sent[i] = now
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(P.encode(P.Message(kind, i, i, now, values)))
        await asyncio.wait_for(receiver, timeout=30)
    latency = np.array([arrival[i] - sent[i] for i in range(frames) if i in arrival and i in sent])
    late = sum(1 for i in range(frames) if i not in arrival or arrival[i] - sent[i] > (JITTER_FRAMES + 1) * PERIOD_MS)
    return {"server_ms": np.array(server_ms), "latency": latency, "dropped": late, "closed": closed[:1]}


def run(preset: str, mode: str, seconds: float, samples: int | None, threads: int, sessions: int) -> dict:
    """``sessions`` paced clients at once against one server; their figures pooled."""
    from reactcli.live.server import free_port

    frames = int(seconds * FPS)
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_serve, args=(preset, port, samples, threads, frames + FPS, sessions), daemon=True)
    proc.start()
    try:
        wait_for(port)

        async def together() -> list[dict]:
            return await asyncio.gather(*(client(port, mode, frames) for _ in range(sessions)))

        results = asyncio.run(together())
    finally:
        proc.terminate()
        proc.join(10)
    latency = np.concatenate([r["latency"] for r in results])
    return {
        "server_ms": np.concatenate([r["server_ms"] for r in results]),
        "latency": latency,
        "shown": np.maximum(latency, JITTER_FRAMES * PERIOD_MS),
        "dropped": sum(r["dropped"] for r in results),
        "frames": frames * sessions,
        "shed": [r["closed"][0] for r in results if r["closed"]],
    }


def pct(values: np.ndarray, q: float | str) -> float:
    """A percentile (or the mean), NaN for no values (a session shed before its first frame)."""
    if not len(values):
        return float("nan")
    return float(values.mean()) if q == "mean" else float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--samples", type=int, default=None, help="K (default: the preset's generation.samples)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (react live's default)")
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--modes", default="mic,replay", help="modes for tiny (paper runs replay only)")
    parser.add_argument("--sessions", default="1", help="comma-separated numbers of simultaneous sessions")
    args = parser.parse_args()

    print(
        f"react live, loopback WebSocket, {args.seconds:g} s at {FPS} fps, K = {args.samples or 'generation.samples'}, "
        f"{args.threads} torch threads, random weights; targets (tiny): server <= 20 ms/frame, "
        f"end-to-end p95 <= 150 ms, 0 drops"
    )
    print(
        f"{'preset':7s} {'mode':7s} {'sessions':>8s} {'server ms/frame':>16s} {'server p95':>11s} "
        f"{'arrival p50':>12s} {'arrival p95':>12s} {'shown p95':>10s} {'dropped':>14s} {'shed':>5s}"
    )
    for preset in args.presets.split(","):
        for mode in args.modes.split(",") if preset == "tiny" else ["replay"]:
            for sessions in (int(n) for n in args.sessions.split(",")):
                r = run(preset, mode, args.seconds, args.samples, args.threads, sessions)
                print(
                    f"{preset:7s} {mode:7s} {sessions:8d} {pct(r['server_ms'], 'mean'):16.1f} "
                    f"{pct(r['server_ms'], 95):11.1f} "
                    f"{pct(r['latency'], 50):12.1f} {pct(r['latency'], 95):12.1f} {pct(r['shown'], 95):10.1f} "
                    f"{r['dropped']:>6d} / {r['frames']:<5d} {len(r['shed']):5d}",
                    flush=True,
                )
                for reason in r["shed"][:1]:
                    print(f"        shed: {reason}")


if __name__ == "__main__":
    main()
