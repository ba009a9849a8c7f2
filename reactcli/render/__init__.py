"""Mesh videos of 3DMM reactions without pytorch3d.

``face_model`` turns 58-D FaceVerse coefficients into vertices (the user's FaceVerse v2 file or a
built-in schematic face), ``camera`` holds the official REACT camera and light, ``raster`` is a
batched z-buffer rasterizer in PyTorch, ``compose``/``video``/``plots`` make the side-by-side mp4s
with sound and the emotion-curve PNGs, and ``clips`` drives ``react render`` over a split.
"""
