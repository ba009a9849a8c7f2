"""Plain PyTorch training for both stages: optimiser/schedule, in-memory corpora, the loop, DDP helpers."""
