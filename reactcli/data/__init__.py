"""The REACT 2024 data layer: layout, file loaders, audio features, caches and torch datasets."""
