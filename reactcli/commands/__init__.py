"""One module per CLI command; each exposes a Typer-annotated function registered in cli.py.

Heavy imports (torch, transformers, numba) happen inside the command functions so that
``react --help`` stays fast.
"""
