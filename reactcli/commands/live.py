"""``react live``: a local web page that streams speaker input in and listener reactions out at the
model's frame rate (25 fps for a REACT 2024 model, 30 fps for a MARS one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reactcli.commands.common import DeviceOption, SeedOption, SetOption, apply_threads
from reactcli.live.pacing import DEFAULT_MAX_SESSIONS


def live(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="predictor.ckpt from train-predictor.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Preprocessed root of the model's edition: enables replay mode.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split whose clips replay mode offers.")] = "val",
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    samples: Annotated[
        int | None,
        typer.Option("--samples", min=1, help="Reactions generated per frame (default: generation.samples)."),
    ] = None,
    face_landmarker: Annotated[
        Path | None,
        typer.Option("--face-landmarker", help="MediaPipe face_landmarker.task: speaker face from the webcam."),
    ] = None,
    mediapipe_js: Annotated[
        Path | None,
        typer.Option("--mediapipe-js", help="Folder of @mediapipe/tasks-vision (vision_bundle.mjs, wasm/)."),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option("--max-sessions", min=1, help="Sessions served at once; the next is refused, saying why."),
    ] = DEFAULT_MAX_SESSIONS,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option("--allow-origin", help="Also accept WebSockets from pages of this origin, e.g. http://host:port."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option("--threads", min=1, help="CPU threads per step (1 by default: a frame is many tiny operations)."),
    ] = 1,
    set_: SetOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
) -> None:
    """Start the live demo server and print its URL (Ctrl-C stops it).

    Microphone mode: the page streams 16 kHz audio (and, with --face-landmarker, webcam blendshapes);
    replay mode (--data): a clip's speaker drives the model and the page shows the reactions beside
    the ground-truth listener. The same --seed gives the same reactions (replay: those of
    `react generate --seed`). The frame rate is the model's edition's: 25 fps (REACT 2024) or 30 fps
    (MARS). A personalised MARS model gets the replayed clip's listener traits in replay mode, and in
    microphone mode the mean of --data's train listeners' traits (neutral 0.5 without them).
    """

    from reactcli.commands.common import collect_overrides
    from reactcli.errors import file_error
    from reactcli.generate import load_generation_model
    from reactcli.live.guard import allowed_hosts, allowed_origins
    from reactcli.live.runner import LiveSettings
    from reactcli.live.server import check_port, create_app, serve
    from reactcli.progress import console
    from reactcli.runtime import resolve_device

    for path, flag in ((face_landmarker, "--face-landmarker"), (checkpoint, "--checkpoint")):
        if path is not None and not path.is_file():
            raise file_error(path, f"{flag} file not found")
    if mediapipe_js is not None and not (mediapipe_js / "vision_bundle.mjs").is_file():
        raise file_error(mediapipe_js, "--mediapipe-js: no vision_bundle.mjs in this folder")
    if data is not None and not data.is_dir():
        raise file_error(data, "--data: dataset root not found")
    allowed_origins(allowed_hosts(host, port), allow_origin or ())  # a wildcard --host or a bad origin: one line
    check_port(host, port)  # before loading anything: a taken port is the commonest mistake
    # One frame is a few hundred tiny matrix products: intra-op threads only add hand-offs, and
    # on a busy 2-core machine a preempted worker thread stalls every op (paper preset: 1.4 s
    # per frame with 2 threads, 0.09 s with 1). The other core is left to the web server.
    apply_threads(threads)
    dev = resolve_device(device)
    # K as in react generate: --samples > --set generation.samples > REACT_GENERATION__SAMPLES > the checkpoint's
    model, facts = load_generation_model(checkpoint, dev, collect_overrides(set_, generation={"samples": samples}))
    k = model.config.generation.samples
    replay = None
    if data is not None:
        from reactcli.live.replay import ReplayData

        replay = ReplayData(data, split, model, facts.edition)
    from reactcli.live.session import mic_personality

    traits, traits_label = mic_personality(model, data)
    settings = LiveSettings(
        samples=k, seed=seed, fps=facts.fps, max_sessions=max_sessions, face_landmarker=face_landmarker,
        mediapipe_js=mediapipe_js, mic_personality=None if traits is None else tuple(float(v) for v in traits),
        mic_personality_label=traits_label,
    )
    app = create_app(model, settings, replay)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {host}: anyone who can reach this address can use the model[/]")

    def ready(url: str) -> None:
        modes = "microphone" + (f" + replay ({len(replay)} {split} samples)" if replay is not None else "")
        console.print(
            f"react live: [bold]{url}[/]  (REACT {facts.edition} model at {facts.fps} fps, {modes}, K={k}, "
            f"seed {seed}, at most {max_sessions} sessions; Ctrl-C stops)"
        )
        if not facts.audio_causal:
            console.print("[yellow]offline model[/]: trained on the release's audio-features, which cannot be "
                          "computed live (microphone mode is off)")
        if traits_label is not None:
            console.print(f"personalised model: replay uses the clip's listener traits, microphone mode {traits_label}")

    serve(app, host, port, allow_origins=allow_origin or (), on_ready=ready)
