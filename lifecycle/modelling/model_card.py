"""The model card: one self-contained HTML page per registered version, saying what the model is for,
what it learned from, how it was chosen, how it did on the holdout against the champion, what it
leans on, and where it is weak.

The page is built from plain facts (`ModelCardFacts`, or the same as a dict), so it can be tested
without a registry or a pipeline. `gather_facts` collects them from what the register step holds;
the facts it computes (permutation importance, known limits) are plain functions here. No MLflow
or KFP here: the register component writes the page to its `model_card` artifact and logs it with
the version's run.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.dataset.config import METRIC_DIRECTIONS, DatasetConfig
from lifecycle.modelling.evaluation import REPORT_STYLE
from lifecycle.modelling.features import features_and_target
from lifecycle.urls import mask_credentials

MODEL_CARD_FILE = "model_card.html"  # its name among the version's run artifacts
RARE_FRACTION = 0.01  # a class or category under this share of the training rows is a known limit
NULL_FRACTION = 0.2  # a column blank in more than this share of the training rows is a known limit
SHOWN_LEVELS = 8  # rare levels named per column; the rest are counted
IMPORTANCE_ROWS = 500  # holdout rows permutation importance shuffles (a sample when there are more)
IMPORTANCE_REPEATS = 3
IMPORTANCE_SEED = 0


@dataclass
class CandidateScore:
    """One candidate's k-fold cross-validation result (lifecycle.modelling.training.cross_validate_candidate)."""

    id: str
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = ""  # e.g. cv_rmsle
    mean: float | None = None
    std: float | None = None
    error: str | None = None

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> CandidateScore:
        candidate = result.get("candidate") or {}
        return cls(
            id=str(candidate.get("id", "")),
            estimator=str(candidate.get("estimator", "")),
            params=dict(candidate.get("params") or {}),
            metric=str(result.get("metric", "")),
            mean=result.get("mean"),
            std=result.get("std"),
            error=result.get("error"),
        )


@dataclass
class FeatureImportance:
    feature: str
    mean: float  # how much the score drops when the column is shuffled
    std: float


@dataclass
class KnownLimit:
    column: str
    kind: str  # "rare class", "rare categories", "many nulls", "target range"
    detail: str


@dataclass
class ModelCardFacts:
    """Everything the card shows. Values from the data or the config are shown as text, escaped."""

    model_name: str
    version: str
    dataset: str
    task: str
    target: str
    metric: str  # the promotion metric, e.g. test_rmsle
    description: str = ""
    classes: list[str] = field(default_factory=list)
    # The data: where it came from, its digest, and the split.
    data_uri: str = ""
    data_sha256: str = ""
    data_rows: int | None = None  # rows of the raw table, before processing
    test_size: float | None = None
    seed: int | None = None
    train_rows: int | None = None
    holdout_rows: int | None = None
    # How it was chosen.
    candidates: list[CandidateScore] = field(default_factory=list)
    chosen: str = ""  # the id of the candidate that was fitted
    # How it did, and what was decided.
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    promotion: dict[str, Any] = field(default_factory=dict)  # the Registration's promotion dict, read generically
    aliases: list[str] = field(default_factory=list)
    importance: list[FeatureImportance] = field(default_factory=list)
    importance_metric: str = ""
    importance_error: str = ""  # why importance could not be computed, when it could not
    known_limits: list[KnownLimit] = field(default_factory=list)
    reference_profile: dict[str, Any] | None = None
    lineage: dict[str, str] = field(default_factory=dict)  # run id, git commit, pipeline run...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCardFacts:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown model card fact(s): {', '.join(unknown)}")
        values = dict(raw)
        values["candidates"] = [_as(CandidateScore, c) for c in values.get("candidates") or []]
        values["importance"] = [_as(FeatureImportance, i) for i in values.get("importance") or []]
        values["known_limits"] = [_as(KnownLimit, k) for k in values.get("known_limits") or []]
        return cls(**values)


def _as(kind, value):
    return value if isinstance(value, kind) else kind(**value)


# ---- facts computed from the model and the data ------------------------------------------------


def feature_importance(
    model,
    X: pd.DataFrame,
    y: pd.Series,
    metric,
    top: int = 10,
    max_rows: int = IMPORTANCE_ROWS,
    repeats: int = IMPORTANCE_REPEATS,
) -> list[FeatureImportance]:
    """The `top` input columns by permutation importance: how much `metric` drops when one is shuffled.

    `metric` is a promotion metric name (test_rmsle...: its cross-validation scorer) or anything
    sklearn takes as `scoring`. Bounded so it costs seconds: at most `max_rows` rows (a seeded
    sample) and `repeats` shuffles per column, with a fixed random state, on one thread: OpenMP
    (HistGradientBoosting) spinning on every core for a few hundred rows runs many times slower.
    """
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    from lifecycle.modelling.training import CV_SCORERS

    if len(X) > max_rows:
        X = X.sample(n=max_rows, random_state=IMPORTANCE_SEED)
        y = y.loc[X.index]
    scoring = CV_SCORERS.get(metric, metric) if isinstance(metric, str) else metric
    with threadpool_limits(limits=1):
        result = permutation_importance(
            model, X, y, scoring=scoring, n_repeats=repeats, random_state=IMPORTANCE_SEED, n_jobs=1
        )
    order = np.argsort(-result.importances_mean, kind="stable")[:top]
    return [
        FeatureImportance(str(X.columns[i]), float(result.importances_mean[i]), float(result.importances_std[i]))
        for i in order
    ]


def known_limits(
    train: pd.DataFrame, config: DatasetConfig, rare: float = RARE_FRACTION, nulls: float = NULL_FRACTION
) -> list[KnownLimit]:
    """Where the training data is thin: classes and categories under `rare` of the rows, columns blank
    in more than `nulls` of them, levels the config knows that training never saw, and (regression)
    the target range it learned from."""
    rows = len(train)
    limits: list[KnownLimit] = []
    if not rows:
        return [KnownLimit("", "no training rows", "the training split is empty")]
    target = train[config.target.name]
    if config.task == "classification":
        shares = target.astype(str).value_counts()
        for label in config.target.classes or []:
            count = int(shares.get(label, 0))
            if count / rows < rare:
                limits.append(
                    KnownLimit(
                        config.target.name,
                        "rare class",
                        f"{label}: {count:,} of {rows:,} training rows ({_percent(count / rows)})",
                    )
                )
    else:
        values = pd.to_numeric(target, errors="coerce").dropna()
        if len(values):
            limits.append(
                KnownLimit(
                    config.target.name,
                    "target range",
                    f"trained on {_number(values.min())} to {_number(values.max())}: "
                    "predictions outside that range are extrapolations",
                )
            )
    fills = config.features.fill_values
    for name in config.feature_columns:
        if name not in train:
            continue
        share = float(train[name].isna().mean())
        if share > nulls:
            detail = f"{_percent(share)} of training rows blank"
            if name in fills:
                detail += f", read as the level {fills[name]!s} (features.fill_values)"
            else:
                detail += ", imputed by the model"
            limits.append(KnownLimit(name, "many nulls", detail))
    for name in config.categorical_columns:
        if name not in train:
            continue
        column = train[name].fillna(fills[name]) if name in fills else train[name]  # a blank that means a level
        counts = column.dropna().astype(str).value_counts()
        thin = counts[counts / rows < rare]
        if len(thin):
            shown = _listed([f"{level} ({count:,})" for level, count in thin.items()])
            limits.append(KnownLimit(name, "rare categories", f"under {_percent(rare)} of {rows:,} rows: {shown}"))
        known = config.columns[name].categories or []
        unseen = [level for level in known if level not in counts.index]
        if unseen:
            limits.append(KnownLimit(name, "categories never seen in training", _listed(unseen)))
    return limits


def _listed(items: list[str]) -> str:
    """The first SHOWN_LEVELS items, and how many more there are."""
    shown = items[:SHOWN_LEVELS] + ([f"+{len(items) - SHOWN_LEVELS} more"] if len(items) > SHOWN_LEVELS else [])
    return ", ".join(shown)


def gather_facts(
    config: DatasetConfig,
    model,
    train: pd.DataFrame,
    test: pd.DataFrame,
    registration: dict[str, Any],
    cv_results: list[dict[str, Any]],
    chosen: str,
    data: dict[str, Any] | None = None,
    lineage: dict[str, str] | None = None,
    reference_profile: dict[str, Any] | None = None,
) -> ModelCardFacts:
    """The card's facts from what the register step holds.

    `registration` is a Registration as a dict; `cv_results` every candidate's cross-validation
    result; `chosen` the fitted candidate's id; `data` the raw data set's metadata (source_uri,
    sha256, rows).
    """
    from lifecycle.modelling.training import cv_scorer

    data = data or {}
    X, y = features_and_target(test, config)
    importance, importance_error = [], ""
    try:  # the version is registered by now: a card without importance beats a failed step
        importance = feature_importance(model, X, y, cv_scorer(config)) if len(X) else []
    except Exception as exc:
        importance_error = f"{type(exc).__name__}: {exc}"[:500]
    return ModelCardFacts(
        model_name=str(registration.get("model_name", "")),
        version=str(registration.get("version", "")),
        dataset=config.name,
        description=config.description,
        task=config.task,
        target=config.target.name,
        classes=list(config.target.classes or []),
        metric=config.registry.metric,
        data_uri=str(data.get("source_uri") or config.data_uri),
        data_sha256=str(data.get("sha256", "")),
        data_rows=int(data["rows"]) if data.get("rows") is not None else None,
        test_size=config.split.test_size,
        seed=config.split.seed,
        train_rows=len(train),
        holdout_rows=len(test),
        candidates=sorted((CandidateScore.from_result(r) for r in cv_results), key=lambda c: c.id),
        chosen=chosen,
        holdout_metrics={k: float(v) for k, v in (registration.get("metrics") or {}).items()},
        promotion=dict(registration.get("promotion") or {}),
        aliases=list(registration.get("aliases") or []),
        importance=importance,
        importance_metric=config.registry.metric.replace("test_", ""),
        importance_error=importance_error,
        known_limits=known_limits(train, config),
        reference_profile=reference_profile,
        lineage={"run_id": str(registration.get("run_id", "")), **(lineage or {})},
    )


# ---- the page ----------------------------------------------------------------------------------

CARD_STYLE = (
    REPORT_STYLE
    + """
body { max-width: 1100px; }
p { font-size: 14px; line-height: 1.45; margin: 4px 0 8px; }
.note { color: #5f6368; }
tr.chosen td { background: #e6f4ea; font-weight: 500; }
.decision { font-size: 15px; font-weight: 500; }
.bar { display: inline-block; height: 10px; background: #1a73e8; vertical-align: middle; }
ul { font-size: 14px; margin: 4px 0 8px; padding-left: 20px; }
"""
)


def text(value) -> str:
    """Any value from the data, the config or the run as HTML text, quotes included."""
    return html.escape(str(value), quote=True)


def _number(value) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def metric_text(value) -> str:
    """A metric as the card writes it (four decimals, as the evaluation report)."""
    if value is None:
        return "–"
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return text(value)


def _rows(value) -> str:
    if value is None:
        return "unknown"
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else text(value)


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    """A two-column table; the values are HTML already."""
    return "<table>" + "".join(f"<tr><th>{text(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def awaits_approval(promotion: dict[str, Any]) -> bool:
    """Whether the promotion dict says a person must approve: a true field named for approval or
    waiting (awaits_approval, pending_approval...), a pending status, or a reason that says so."""
    for key, value in promotion.items():
        name = str(key).lower()
        if ("approv" in name or "await" in name or "pending" in name) and value is True:
            return True
        if name in ("status", "state", "decision") and isinstance(value, str) and "await" in value.lower():
            return True
    reason = str(promotion.get("reason", "")).lower()
    return "awaits approval" in reason or "awaiting approval" in reason


def decision_text(promotion: dict[str, Any], aliases: list[str]) -> str:
    if not promotion:
        return "no promotion decision recorded"
    if awaits_approval(promotion):
        return "awaits approval: registered as challenger until a person promotes it"
    if "champion" in aliases or (promotion.get("promote") is True and not aliases):
        return "promoted: this version is the champion"
    if promotion.get("promote") is True:
        return "judged better than the champion, but not made champion (see why)"
    return "not promoted: the champion stays; this version is the challenger"


def _purpose(f: ModelCardFacts) -> str:
    description = text(f.description) if f.description else '<span class="note">no description in the config</span>'
    target = text(f.target)
    if f.classes:
        target += f" (classes {', '.join(text(c) for c in f.classes)}; positive: {text(f.classes[-1])})"
    direction = {"min": "lower is better", "max": "higher is better"}.get(METRIC_DIRECTIONS.get(f.metric, ""), "")
    return _pairs(
        [
            ("description", description),
            ("data set", text(f.dataset)),
            ("task", text(f.task)),
            ("target", target),
            ("promotion metric", text(f.metric) + (f" ({direction})" if direction else "")),
        ]
    )


def _data(f: ModelCardFacts) -> str:
    split = []
    if f.test_size is not None:
        split.append(f"test_size {text(f.test_size)}")
    if f.seed is not None:
        split.append(f"seed {text(f.seed)}")
    pairs = [
        ("source", text(mask_credentials(f.data_uri)) if f.data_uri else "unknown"),
        ("sha256", f"<code>{text(f.data_sha256)}</code>" if f.data_sha256 else "unknown"),
        ("raw rows", _rows(f.data_rows)),
        ("split", ", ".join(split) or "unknown"),
        ("training rows", _rows(f.train_rows)),
        ("holdout rows", _rows(f.holdout_rows)),
    ]
    pairs += [(key, text(value)) for key, value in f.lineage.items() if value]
    return _pairs(pairs)


def _candidates(f: ModelCardFacts) -> str:
    if not f.candidates:
        return '<p class="note">No cross-validation results were passed to the card.</p>'
    metric = next((c.metric for c in f.candidates if c.metric), "score")
    rows = []
    for c in f.candidates:
        chosen = c.id == f.chosen
        if c.error:
            score = f"not scored: {text(c.error)}"
        elif c.mean is None:
            score = "–"
        else:
            score = metric_text(c.mean) + (f" ± {metric_text(c.std)}" if c.std is not None else "")
        params = json.dumps(c.params, sort_keys=True, default=str)
        rows.append(
            f"<tr{' class=chosen' if chosen else ''}><td>{'✔ chosen' if chosen else ''}</td><td>{text(c.id)}</td>"
            f'<td>{text(c.estimator)}</td><td><code>{text(params)}</code></td><td class="number">{score}</td></tr>'
        )
    return _table(["", "candidate", "estimator", "parameters", f"{metric} (mean ± std over folds)"], rows)


def _champion_values(promotion: dict[str, Any]) -> dict[str, float | None]:
    """The champion's holdout values the promotion dict carries: a dict of them if there is one,
    else its value of the promotion metric."""
    for key in ("champion_metrics", "champion_holdout_metrics"):
        if isinstance(promotion.get(key), dict):
            return dict(promotion[key])
    if promotion.get("metric"):
        return {str(promotion["metric"]): promotion.get("champion_value")}
    return {}


def _holdout(f: ModelCardFacts) -> str:
    champion = f.promotion.get("champion_version")
    values = _champion_values(f.promotion) if champion else {}
    names = sorted(set(f.holdout_metrics) | {k for k, v in values.items() if v is not None})
    header = ["metric", f"this version (v{f.version})"]
    if champion:
        header.append(f"champion (v{champion}) on the same holdout")
    rows = []
    for name in names:
        cells = f"<td>{text(name)}{' ★' if name == f.metric else ''}</td>"
        cells += f'<td class="number">{metric_text(f.holdout_metrics.get(name))}</td>'
        if champion:
            value = values.get(name)
            shown = metric_text(value) if value is not None else '<span class="note">not scored</span>'
            cells += f'<td class="number">{shown}</td>'
        rows.append(f"<tr>{cells}</tr>")
    if champion:
        note = f"★ the promotion metric. The champion (v{text(champion)}) was scored on this run's holdout."
    else:
        note = "There was no champion to compare with: this version was the first."
    return _table(header, rows) + f'<p class="note">{note}</p>'


SHOWN_PROMOTION_FIELDS = ("promote", "reason")


def _promotion(f: ModelCardFacts) -> str:
    p = f.promotion
    out = f'<p class="decision">{text(decision_text(p, f.aliases))}</p>'
    if p.get("reason"):
        out += f"<p>Why: {text(p['reason'])}</p>"
    extra = [(str(k), v) for k, v in sorted(p.items(), key=lambda kv: str(kv[0])) if k not in SHOWN_PROMOTION_FIELDS]
    pairs = [("aliases", text(", ".join(f.aliases)) if f.aliases else "none")]
    pairs += [(k, _value(v)) for k, v in extra]
    return out + _pairs(pairs)


def _value(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return text(value)


def _importance(f: ModelCardFacts) -> str:
    if not f.importance:
        why = f": {text(f.importance_error)}" if f.importance_error else ""
        return f'<p class="note">Not computed{why}.</p>'
    largest = max((max(i.mean, 0.0) for i in f.importance), default=0.0) or 1.0
    rows = [
        f'<tr><td>{text(i.feature)}</td><td class="number">{i.mean:.4g} ± {i.std:.2g}</td>'
        f'<td><span class="bar" style="width:{max(i.mean, 0.0) / largest * 200:.0f}px"></span></td></tr>'
        for i in f.importance
    ]
    drop = f"drop in {text(f.importance_metric)}" if f.importance_metric else "drop in score"
    return _table(["feature", f"{drop} when shuffled", ""], rows) + (
        '<p class="note">Permutation importance on the holdout (a seeded sample, a few shuffles per column).</p>'
    )


def _reference(profile: dict[str, Any]) -> str:
    """The reference profile (lifecycle.monitoring.profile) in brief: what drift will be measured against."""
    prediction = profile.get("prediction") or {}
    what = f"probability of {text(prediction.get('label'))}" if prediction.get("kind") == "probability" else "value"
    out = (
        f"<p>Drift is measured against {_rows(profile.get('rows'))} training rows and the predicted {what} "
        f"for {_rows(prediction.get('rows'))} holdout rows, which ranged from {_value(prediction.get('min'))} "
        f"to {_value(prediction.get('max'))}.</p>"
    )
    lines = []
    for name, column in (profile.get("numeric") or {}).items():
        shape = f"{_value(column.get('min'))} to {_value(column.get('max'))}"
        lines.append(_reference_row(name, "numeric", column, shape))
    for name, column in (profile.get("categorical") or {}).items():
        shares = sorted((column.get("shares") or {}).items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{text(k)} {_percent(v)}" for k, v in shares[:3])
        rare = len(column.get("other_levels") or [])
        shape = top + (f", {rare} rare pooled" if rare else "")
        lines.append(_reference_row(name, "categorical", column, shape))
    return out + (_table(["column", "kind", "null fraction", "range or most common"], lines) if lines else "")


def _reference_row(name: str, kind: str, column: dict[str, Any], shape: str) -> str:
    nulls = column.get("null_fraction")
    shown = _percent(float(nulls)) if isinstance(nulls, int | float) else "–"
    return f'<tr><td>{text(name)}</td><td>{kind}</td><td class="number">{shown}</td><td>{shape}</td></tr>'


def _limits(f: ModelCardFacts) -> str:
    if not f.known_limits:
        return "<p>None found in the training data.</p>"
    rows = [
        f"<tr><td>{text(k.column)}</td><td>{text(k.kind)}</td><td>{text(k.detail)}</td></tr>" for k in f.known_limits
    ]
    return _table(["column", "limit", "detail"], rows) + (
        '<p class="note">Predictions for rows that fall in these are backed by few training examples.</p>'
    )


def model_card_html(facts: ModelCardFacts | dict[str, Any]) -> str:
    """The model card as a self-contained HTML page (no scripts, no external resources)."""
    f = facts if isinstance(facts, ModelCardFacts) else ModelCardFacts.from_dict(facts)
    title = f"Model card: {text(f.model_name)} v{text(f.version)}"
    sections = [
        ("What it is for", _purpose(f)),
        ("Data", _data(f)),
        ("Candidates (k-fold cross-validation on the training split)", _candidates(f)),
        (f"Holdout metrics ({_rows(f.holdout_rows)} rows)", _holdout(f)),
        ("Promotion", _promotion(f)),
        ("Most important features", _importance(f)),
    ]
    if f.reference_profile is not None:
        sections.append(("Reference profile", _reference(f.reference_profile)))
    sections.append(("Known limits", _limits(f)))
    body = "\n".join(f"<section><h2>{heading}</h2>{content}</section>" for heading, content in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>{CARD_STYLE}</style>
</head><body>
<h1>{title}</h1>
<p class="note">{text(f.dataset)} · {text(f.task)} · aliases: {text(", ".join(f.aliases) or "none")}</p>
{body}
</body></html>
"""
