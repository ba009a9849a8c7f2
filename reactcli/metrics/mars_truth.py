"""What a REACT 2025/2026 (MARS) split is scored against: the samples, their ground-truth sets, aligned.

``react evaluate`` and ``react baselines`` on a MARS root share this stage:

1. :func:`load_mars_truth` lists the split's recordings with the official junk rules
   (``data/mars.py``), takes the samples in the official sorted order (speakers, then listeners
   when bidirectional), reads every input's facial attributes (their length is the prediction
   length) and builds the ground-truth sets: drawn by the naive-baseline script's rule with
   ``gt_seed`` (``data/mars_gt.py``) or replayed from a ``--gt-list`` file, which must cover exactly
   these samples in this order.
2. :func:`align_truth` reads each set's recordings at full length and aligns them to the
   prediction lengths with the post-processor (``models/post_processor.py``): ``official`` (the
   organisers' stochastic latent, eps from a generator seeded with ``alignment_seed`` and advanced as
   the naive-baseline script advances torch's stream on CPU, so the same seed on CPU gives the
   script's exact targets), ``mean`` (the latent mean, deterministic) or ``resample`` (no
   checkpoint, linear interpolation: labelled non-official).

:class:`ScoringOptions` holds the options of both steps, which the two commands share.
Both return plain records that the metrics JSON embeds (:meth:`MarsTruth.ground_truth_record`,
:attr:`AlignedTruth.record`), so a result names every GT id, the seeds and the checkpoint's sha256.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reactcli.data.mars import MarsSample, Recording, list_recordings
from reactcli.data.mars_gt import (
    GtDraw,
    GtSet,
    check_gt_sets_cover,
    draw_gt_sets,
    gt_list_document,
    read_gt_list,
)
from reactcli.data.mars_loaders import load_attributes
from reactcli.editions import MARS_GT_COUNT, MARS_GT_SEED, MARS_LISTING_MODALITY, POST_PROCESSOR_CLIP, Edition
from reactcli.errors import ReactError
from reactcli.freshness import sha256_file

ALIGNMENT_LABELS = {
    "official": "official: the organisers' stochastic post-processor call, seeded",
    "mean": "post-processor with the latent mean (deterministic; their reparameterization='deterministic')",
    "resample": "NON-OFFICIAL: linear interpolation in time, no post-processor",
}


@dataclass
class MarsTruth:
    """One MARS split as the metrics see it, in the official sample order."""

    root: Path
    split: str
    edition: Edition
    bidirectional: bool
    samples: list[MarsSample]
    speakers: list[np.ndarray]  # each input's own facial attributes (T_n, 25), raw
    gt_sets: list[GtSet]
    gt_record: dict[str, Any]  # how the sets were made (rule and seed, or the file and its sha256)
    junk: int = 0
    unpaired: list[str] = field(default_factory=list)
    _cache: dict[Recording, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def ids(self) -> list[str]:
        """Sample ids (the input recording's id), the order predictions must follow."""
        return [s.id for s in self.samples]

    @property
    def lengths(self) -> list[int]:
        """Frames each prediction has: the input's facial-attributes length."""
        return [int(s.shape[0]) for s in self.speakers]

    def attributes(self, recording: Recording) -> np.ndarray:
        """(T, 25) float32 facial attributes of a recording of this split, read once."""
        if recording not in self._cache:
            path = self.root / self.split / MARS_LISTING_MODALITY / f"{recording.id}.npy"
            self._cache[recording] = load_attributes(path)
        return self._cache[recording]

    def raw_targets(self) -> list[list[np.ndarray]]:
        """Every sample's ground truths at full length (a recording shared by several sets is read once)."""
        return [[self.attributes(g) for g in s.gts] for s in self.gt_sets]

    def ground_truth_record(self) -> dict[str, Any]:
        """The GT part of the metrics JSON: the rule or file, and every sample's ids."""
        return {**self.gt_record, "samples": [s.to_json() for s in self.gt_sets]}


def load_mars_truth(
    root: str | Path,
    split: str,
    edition: Edition,
    bidirectional: bool | None = None,
    gt_seed: int = MARS_GT_SEED,
    gt_list: str | Path | None = None,
) -> MarsTruth:
    """List the split, read every input, and build (or replay) the ground-truth sets.

    ``bidirectional`` None means the edition's default (2025 both directions, 2026 speaker ->
    listener). With ``gt_list`` the seed is not used; the file must name exactly the split's samples
    in the official order (one-line errors name the file and the entry otherwise).
    """
    root = Path(root)
    if not edition.is_mars:
        raise ReactError(f"REACT {edition.name} is not a MARS edition")
    bidirectional = edition.bidirectional if bidirectional is None else bool(bidirectional)
    listing = list_recordings(root, split)
    samples = listing.samples(bidirectional)
    if not samples:
        raise ReactError(
            path=listing.folder,
            problem=f"no {'recording' if bidirectional else 'speaker'} with its dyad partner: nothing to score",
        )
    if gt_list is None:
        draw: GtDraw = draw_gt_sets(listing.recordings, gt_seed, bidirectional, MARS_GT_COUNT)
        sets = draw.sets
        doc = gt_list_document(draw, split)
        record = {key: doc[key] for key in ("rule", "seed", "bidirectional", "num_gts")}
        record["source"] = "drawn"
    else:
        sets = read_gt_list(gt_list, listing.recordings, split)
        check_gt_sets_cover(sets, samples, gt_list)
        record = {
            "rule": "replayed from --gt-list",
            "source": "file",
            "file": str(gt_list),
            "file_sha256": sha256_file(gt_list),
            "bidirectional": bidirectional,
            "num_gts": sorted({len(s.gts) for s in sets}),
        }
    truth = MarsTruth(root, split, edition, bidirectional, [s.sample for s in sets], [], sets, record)
    truth.speakers = [truth.attributes(s.input) for s in truth.samples]
    truth.junk = len(listing.junk)
    truth.unpaired = [r.id for r in listing.unpaired()]
    return truth


@dataclass
class AlignedTruth:
    """The ground truths aligned to the prediction lengths, and how (the JSON's ``alignment``)."""

    targets: list[np.ndarray]  # (G, P_n, 25) per sample
    record: dict[str, Any]
    warnings: list[str]
    generator: Any = None  # the script's CPU stream after an official CPU alignment (B_Random continues from it)
    seconds: float = 0.0

    @property
    def official(self) -> bool:
        return self.record["mode"] != "resample"


def check_alignment_options(mode: str, post_processor: str | Path | None) -> None:
    """The checkpoint goes with the model modes only: one line before any work."""
    if mode not in ALIGNMENT_LABELS:
        raise ReactError(f"--alignment {mode}: expected one of {', '.join(ALIGNMENT_LABELS)}")
    if mode == "resample" and post_processor is not None:
        raise ReactError("--alignment resample interpolates without the post-processor: drop --post-processor")
    if mode != "resample" and post_processor is None:
        raise ReactError(
            f"--alignment {mode} needs --post-processor checkpoint.pth (the organisers' "
            "pretrained_models/post_processor/checkpoint.pth); --alignment resample is the labelled "
            "non-official fallback without it"
        )


def load_alignment_model(post_processor: str | Path, device: Any) -> Any:
    """The organisers' checkpoint, loaded strictly (``models/post_processor.load_post_processor``)."""
    from reactcli.models.post_processor import load_post_processor

    return load_post_processor(post_processor, device)


@dataclass
class AlignmentJob:
    """Everything the alignment needs, checked: the mode, the loaded model and the seed."""

    mode: str
    post_processor: Path | None
    seed: int
    device: str
    model: Any = None
    warnings: list[str] = field(default_factory=list)  # mean mode: the pairs cut to P


def check_plans(truth: MarsTruth, pred_lengths: Sequence[int], mode: str) -> list[str]:
    """Refuse, before any decoding, the length pairs the post-processor cannot align in ``mode``.

    Fewer frames than segments is refused in both model modes (the organisers' ``assert``); a pair
    whose decoded segments do not add up to P is refused in ``official`` mode only (their code
    crashes there); ``mean`` cuts the decoded frames to P, and the returned warnings say where.
    """
    from reactcli.models.post_processor import SegmentError, plan_segments

    warnings: list[str] = []
    if mode == "resample":
        return warnings
    for n, (p_len, gts) in enumerate(zip(pred_lengths, truth.raw_targets(), strict=True)):
        for j, gt in enumerate(gts):
            try:
                plan = plan_segments(int(p_len), gt.shape[0], POST_PROCESSOR_CLIP)
            except SegmentError as exc:
                where = f"{truth.ids[n]}, ground truth {j} ({truth.gt_sets[n].gts[j].id})"
                raise ReactError(f"{where}: the post-processor cannot align it: {exc}") from None
            if mode == "official" and not plan.fits:
                raise ReactError(
                    f"{truth.ids[n]}, ground truth {j} ({truth.gt_sets[n].gts[j].id}): the official post-processor "
                    f"decodes {plan.output_total} frames for a {p_len}-frame prediction from {gt.shape[0]} frames "
                    "(the organisers' code crashes here); use --alignment mean or resample"
                )
            if not plan.fits:
                warnings.append(
                    f"{truth.ids[n]}, ground truth {j} ({truth.gt_sets[n].gts[j].id}): the post-processor's segments "
                    f"give {plan.output_total} frames for a {p_len}-frame prediction (T = {gt.shape[0]}); kept the "
                    f"first {p_len} (the organisers' code crashes here)"
                )
    return warnings


def prepare_alignment(
    truth: MarsTruth,
    pred_lengths: Sequence[int],
    mode: str,
    post_processor: str | Path | None = None,
    alignment_seed: int = MARS_GT_SEED,
    device: str = "cpu",
) -> AlignmentJob:
    """Check the options, every ground-truth file and every length pair, and load the checkpoint strictly."""
    check_alignment_options(mode, post_processor)
    truth.raw_targets()  # every GT file read (and checked) now, not halfway through the alignment
    warnings = check_plans(truth, pred_lengths, mode)
    job = AlignmentJob(mode, None if post_processor is None else Path(post_processor), int(alignment_seed), device)
    job.warnings = warnings
    if mode != "resample":
        job.model = load_alignment_model(post_processor, device)
    return job


@dataclass(frozen=True)
class ScoringOptions:
    """How a MARS split is scored: its ground-truth sets and their alignment.

    ``react evaluate`` and ``react baselines`` take the same options and check them the same way,
    so a model and the baselines are scored on the same protocol. ``bidirectional`` None means the
    edition's default; ``gt_list`` replaces the draw with ``gt_seed``.
    """

    post_processor: str | Path | None = None
    alignment: str = "official"
    gt_seed: int = MARS_GT_SEED
    gt_list: str | Path | None = None
    bidirectional: bool | None = None
    alignment_seed: int = MARS_GT_SEED
    device: str = "cpu"

    @classmethod
    def given(cls, **options: Any) -> ScoringOptions:
        """The options as a command line gives them, None standing for "not given" (the default)."""
        return cls(**{key: value for key, value in options.items() if value is not None})

    def load_truth(self, root: str | Path, split: str, edition: Edition) -> MarsTruth:
        """The alignment options checked (before any file is read), then the split and its GT sets."""
        check_alignment_options(self.alignment, self.post_processor)
        return load_mars_truth(root, split, edition, self.bidirectional, self.gt_seed, self.gt_list)

    def prepare_alignment(self, truth: MarsTruth, pred_lengths: Sequence[int]) -> AlignmentJob:
        """:func:`prepare_alignment` with these options: every GT file and length pair, the checkpoint."""
        return prepare_alignment(
            truth, pred_lengths, self.alignment, self.post_processor, self.alignment_seed, self.device
        )


def align_truth(
    truth: MarsTruth,
    pred_lengths: Sequence[int],
    job: AlignmentJob,
    on_sample: Callable[[], None] | None = None,
) -> AlignedTruth:
    """Align every sample's ground truths to ``pred_lengths`` as ``job`` says (module docstring).

    The generator of ``official`` mode on CPU starts where the naive-baseline script's stream is
    after ``torch.manual_seed(seed)`` and the post-processor's construction; its eps come from it, and
    it is returned so that B_Random can continue from it as the script does. On CUDA the eps come
    from a CUDA generator seeded with the seed (the script's CUDA stream).
    """
    import torch

    from reactcli.models.post_processor import align_targets, baseline_script_generator

    start = time.perf_counter()
    mode = job.mode
    record: dict[str, Any] = {"mode": mode, "official": mode != "resample", "label": ALIGNMENT_LABELS[mode]}
    generator = eps_generator = None
    model = job.model
    if mode != "resample":
        torch_device = torch.device(job.device)
        model = model.to(torch_device)
        record["post_processor"] = str(job.post_processor)
        record["post_processor_sha256"] = sha256_file(job.post_processor)
        record["device"] = str(torch_device)
        if mode == "official":
            if torch_device.type == "cuda":
                eps_generator = torch.Generator(torch_device).manual_seed(job.seed)
                stream = "a CUDA generator seeded with the seed (the script's CUDA stream)"
            else:
                eps_generator = generator = baseline_script_generator(job.seed)
                stream = "torch.manual_seed(seed) and the post-processor's construction (naive-baseline script, CPU)"
            record["seed"] = job.seed
            record["stream"] = stream
    raw = truth.raw_targets()
    if mode == "official":  # one eps draw per listed ground truth, in list order, repeats included
        listed = raw
    else:  # deterministic: a recording listed twice in a set aligns to the same frames, so decode it once
        firsts = [list(dict.fromkeys(s.gts)) for s in truth.gt_sets]
        listed = [[truth.attributes(g) for g in gts] for gts in firsts]
    result = align_targets(
        [int(p) for p in pred_lengths], listed, mode, model, eps_generator,
        clip=POST_PROCESSOR_CLIP, names=truth.ids, on_sample=on_sample,
    )  # fmt: skip
    targets = result.targets
    if mode != "official":
        targets = [t[[gts.index(g) for g in s.gts]] for t, gts, s in zip(targets, firsts, truth.gt_sets, strict=True)]
    else:
        record["draws"] = result.draws
    # the warnings of the cut pairs come from the plan check: they name every listed GT and its recording
    return AlignedTruth(targets, record, list(job.warnings), generator, time.perf_counter() - start)
