"""Live mode building blocks, usable without the web page (a script, a robot, an avatar).

- :mod:`reactcli.live.audio_stream`: speaker audio features computed incrementally, chunk by
  chunk, equal to the offline features of the same waveform.
- :mod:`reactcli.live.resample`: the streaming form of the offline polyphase resampler.
- :mod:`reactcli.live.face_source`: speaker face and emotion inputs when there is no dataset clip:
  MediaPipe blendshapes + head pose -> FaceVerse 3DMM, the neutral (training-mean) face, and the
  speaker-emotion fallback.
"""
