"""The drift report: one self-contained HTML page (plots inlined) for the KFP UI's HTML viewer.

The verdict and the drifted columns first, then training and scored distributions side by side for
each drifted column, then every column's statistics. Column names, categories and the data set's
name come from outside: every one is escaped, quotes included.
"""

from __future__ import annotations

import base64
import html
import io

from lifecycle.dataset.report import number, percent
from lifecycle.modelling.evaluation import REPORT_STYLE, plot_text
from lifecycle.monitoring.drift import OTHER, ColumnDrift, DriftResult, with_blanks
from lifecycle.monitoring.profile import NumericColumn, Profile, load_profile

MAX_PLOTS = 20  # drifted columns plotted, worst PSI first; a report on 80 drifted columns stays readable
LABEL_WIDTH = 28  # characters of a category on a plot axis
BLANK = "(blank)"

STYLE = (
    REPORT_STYLE
    + """
.drifted { color: #b3261e; font-weight: 500; }
.stable { color: #146c2e; font-weight: 500; }
tr.flagged td:first-child { font-weight: 500; }
"""
)


def _escape(value) -> str:
    return html.escape(str(value), quote=True)


def _figure_html(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="" src="data:image/png;base64,{encoded}"/>'


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


def numeric_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["any"]
    inner = [f"{number(low)} to {number(high)}" for low, high in zip(edges, edges[1:], strict=False)]
    return [f"≤ {number(edges[0])}", *inner, f"> {number(edges[-1])}"]


def _distributions(reference, scored_shares, scored_nulls: float) -> tuple[list[str], list[float], list[float]]:
    """Bin labels with the training and scored shares of all rows, blanks as their own bin."""
    if isinstance(reference, NumericColumn):
        labels, expected = numeric_labels(reference.edges), list(reference.shares)
        actual = list(scored_shares)
    else:
        labels = [_cut(name) for name in reference.shares] + [OTHER]
        expected = [*reference.shares.values(), reference.other]
        actual = list(scored_shares.values())
    n = len(labels)
    expected = with_blanks(expected or [0.0] * n, reference.null_fraction)
    actual = with_blanks(actual or [0.0] * n, scored_nulls)
    return [BLANK, *labels], expected.tolist(), actual.tolist()


def _plot(title: str, labels: list[str], expected: list[float], actual: list[float]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The blank and pooled bins only where either side has rows in them; otherwise they are empty rows.
    keep = [i for i, label in enumerate(labels) if label not in (BLANK, OTHER) or expected[i] or actual[i]]
    labels, expected, actual = [labels[i] for i in keep], [expected[i] for i in keep], [actual[i] for i in keep]
    positions = range(len(labels))
    fig, axis = plt.subplots(figsize=(8, 0.32 * len(labels) + 1.2))
    # Positions, not names, on the axis: two names that differ only in a $ would share a bar.
    axis.barh([p - 0.2 for p in positions], expected[::-1], height=0.4, label="training", color="#9aa0a6")
    axis.barh([p + 0.2 for p in positions], actual[::-1], height=0.4, label="scored", color="#d93025")
    axis.set_yticks(list(positions), [plot_text(label) for label in labels[::-1]])
    axis.set(xlabel="share of rows", title=plot_text(title))
    axis.legend(loc="best")
    image = _figure_html(fig)
    plt.close(fig)
    return image


def _column_plot(column: ColumnDrift, profile: Profile) -> str:
    reference = profile.numeric[column.name] if column.type == "numeric" else profile.categorical[column.name]
    labels, expected, actual = _distributions(reference, column.shares, column.null_fraction)
    return _plot(f"{column.name}: PSI {column.psi:.3f}", labels, expected, actual)


def _summary(result: DriftResult, profile: Profile) -> str:
    verdict = result.verdict
    worst = result.worst
    worst_text = f"{_escape(worst.name)} (PSI {worst.psi:.3f})" if worst else "none"
    prediction = result.prediction
    what = "probability of " + _escape(profile.prediction.label) if prediction.kind == "probability" else "value"
    items = [
        f"rows scored: {result.rows:,} (training: {profile.rows:,})",
        f"drifted columns: {result.drifted_count} of {len(result.columns)} "
        f"(the verdict is drifted from {result.min_drifted_columns} on)",
        f"worst drift: {worst_text}",
        f'predictions ({what}): PSI {prediction.psi:.3f}, threshold {prediction.threshold:g}, <span class="'
        f'{"drifted" if prediction.drifted else "stable"}">{"drifted" if prediction.drifted else "stable"}</span>',
    ]
    drifted = "".join(
        f"<tr><td>{_escape(name)}</td><td>{_escape('; '.join(reasons))}</td></tr>"
        for name, reasons in result.drifted_columns.items()
    )
    table = f"<table><tr><th>column</th><th>why</th></tr>{drifted}</table>" if drifted else "<p>None.</p>"
    return (
        f'<h1>Drift: {_escape(profile.dataset)} <span class="{verdict}">{verdict.upper()}</span></h1>\n'
        f"<ul>{''.join(f'<li>{item}</li>' for item in items)}</ul>\n"
        f"<h2>Drifted columns</h2>\n{table}"
    )


def _cell(value: float | None, as_percent: bool = True) -> str:
    if value is None:
        return '<td class="number"></td>'
    return f'<td class="number">{percent(value) if as_percent else f"{value:.3f}"}</td>'


def _columns_table(result: DriftResult) -> str:
    rows = []
    # Drifted columns first, then by PSI: the columns to look at are at the top of a long table.
    for column in sorted(result.columns.values(), key=lambda c: (not c.drifted, -c.psi)):
        unseen = ", ".join(f"{_escape(_cut(value))} ({count:,})" for value, count in column.unseen_values)
        status = '<span class="drifted">drifted</span>' if column.drifted else "ok"
        rows.append(
            f'<tr class="{"flagged" if column.drifted else ""}"><td>{_escape(column.name)}</td>'
            f"<td>{_escape(column.type)}</td>{_cell(column.psi, as_percent=False)}"
            f'<td class="number">{percent(column.training_null_fraction)} → {percent(column.null_fraction)}</td>'
            f"{_cell(column.out_of_range_fraction)}{_cell(column.unseen_fraction)}<td>{unseen}</td>"
            f"<td>{status}</td></tr>"
        )
    header = (
        "<tr><th>column</th><th>type</th><th>PSI</th><th>blanks (training → scored)</th><th>outside training range</th>"
        "<th>unseen categories</th><th>most frequent unseen</th><th>status</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


def drift_report_html(result: DriftResult, profile: Profile | dict | str) -> str:
    """A self-contained HTML page for a drift check against `profile`."""
    profile = load_profile(profile)
    plotted = sorted((c for c in result.columns.values() if c.drifted), key=lambda c: -c.psi)
    images = [_column_plot(column, profile) for column in plotted[:MAX_PLOTS]]
    if len(plotted) > MAX_PLOTS:
        images.append(f"<p>{len(plotted) - MAX_PLOTS} more drifted columns are listed in the table below.</p>")
    if result.prediction.drifted:
        labels, expected, actual = _distributions(
            profile.prediction, result.prediction.shares, result.prediction.null_fraction
        )
        images.insert(0, _plot(f"predictions: PSI {result.prediction.psi:.3f}", labels, expected, actual))
    plots = "\n".join(images) if images else "<p>No column drifted.</p>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Drift: {_escape(profile.dataset)}</title>
<style>{STYLE}</style>
</head><body>
{_summary(result, profile)}
<h2>Training and scored distributions</h2>
{plots}
<h2>All columns</h2>
{_columns_table(result)}
</body></html>
"""
