"""Scoring prediction folders (HIM-2K layout, SPEC s.4) against ground truth (built shards or a HIM-2K folder).

>>> result = evaluate_folder("preds", "data/him-test", split="test")   # doctest: +SKIP
>>> write_report(result, "preds-eval")                                  # doctest: +SKIP

Bad inputs never abort a run: each one is a :class:`Problem` ``(file, message)`` in ``result.problems``.
"""

from himbench.evaluation.ground_truth import GroundTruth, Problem, available_splits, open_ground_truth
from himbench.evaluation.report import (
    format_classic_table,
    format_instance_table,
    format_problems,
    format_summary_table,
    write_report,
)
from himbench.evaluation.runner import (
    EvaluationConfig,
    EvaluationResult,
    ImageOutcome,
    evaluate_folder,
    evaluate_image,
    resolve_split,
)
from himbench.predictions.reader import PredictionFolder, read_prediction_folder

__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "GroundTruth",
    "ImageOutcome",
    "PredictionFolder",
    "Problem",
    "available_splits",
    "evaluate_folder",
    "evaluate_image",
    "format_classic_table",
    "format_instance_table",
    "format_problems",
    "format_summary_table",
    "open_ground_truth",
    "read_prediction_folder",
    "resolve_split",
    "write_report",
]
