"""reactcli: online appropriate facial reaction generation for REACT 2024."""

__version__ = "0.1.0"
