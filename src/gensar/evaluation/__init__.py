"""Model-agnostic evaluation: shared candidate lists, metrics, significance, reports.

A model never evaluates itself: it returns scores (for the candidates of each
sample, or for the whole catalogue, or a top-k list) and this package turns
them into the paper's numbers, identically for every model.
"""

from gensar.evaluation.candidates import (
    CandidateConfig,
    CandidateSet,
    build_candidates,
    candidates_path,
    load_candidates,
)
from gensar.evaluation.evaluate import EvaluationResult, evaluate_scores
from gensar.evaluation.metrics import (
    candidate_metrics,
    full_catalogue_metrics,
    per_sample_hr,
    per_sample_ndcg,
    rank_in_topk,
    rank_of_target,
)
from gensar.evaluation.protocol import RankingModel, evaluate_model
from gensar.evaluation.report import plot_tradeoff, results_table_markdown, write_results
from gensar.evaluation.significance import Comparison, compare_to_best_other, paired_p_value

__all__ = [
    "CandidateConfig",
    "CandidateSet",
    "Comparison",
    "EvaluationResult",
    "RankingModel",
    "build_candidates",
    "candidate_metrics",
    "candidates_path",
    "compare_to_best_other",
    "evaluate_model",
    "evaluate_scores",
    "full_catalogue_metrics",
    "load_candidates",
    "paired_p_value",
    "per_sample_hr",
    "per_sample_ndcg",
    "plot_tradeoff",
    "rank_in_topk",
    "rank_of_target",
    "results_table_markdown",
    "write_results",
]
