"""Mesh videos of 3DMM reactions without pytorch3d.

``face_model`` turns 58-D FaceVerse coefficients into vertices with one of two face sources:
``faceverse`` (the user's FaceVerse v2 file, read safely) or ``schematic`` (the built-in head).
``camera`` holds the official REACT camera and light, ``raster`` is a batched z-buffer rasterizer
in PyTorch, ``compose``/``video``/``plots`` make the side-by-side mp4s with sound and the
emotion-curve PNGs, and ``clips`` builds the renderer and drives ``react render`` over a split.
``pirender`` is the photo-realistic renderer: the REACT PIRender network, for the organisers' weights.
"""
