"""Live mode: the model in real time, as building blocks usable without the web page (a script, a
robot, an avatar) and as the ``react live`` server.

- :mod:`reactcli.live.audio_stream`: speaker audio features computed incrementally, chunk by
  chunk, equal to the offline features of the same waveform (:mod:`reactcli.live.resample`,
  :mod:`reactcli.live.wav2vec2_stream`).
- :mod:`reactcli.live.mediapipe`: MediaPipe's blendshape names and matrix conventions;
  :mod:`reactcli.live.face_source` and :mod:`reactcli.live.emotion_source`: the speaker's face and
  emotion when there is no dataset clip (webcam or training mean).
- :mod:`reactcli.live.session`: the per-frame loop of one client.
- The server: :mod:`reactcli.live.protocol` (wire format), :mod:`reactcli.live.pacing` (timing
  rules), :mod:`reactcli.live.runner` (sessions, cap, shedding), :mod:`reactcli.live.guard`
  (Host/Origin checks), :mod:`reactcli.live.server` (routes, uvicorn).
"""
