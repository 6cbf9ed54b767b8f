"""The validation report: what each column holds against the rules of its config, as Markdown.

The KFP UI shows the Markdown beside the validate step, for a passing run as for a failing one: the
violations and soft findings first, then one table row per column (a data set may have ~80).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from lifecycle.urls import mask_credentials

SHOWN_VALUES = 3  # most frequent, unseen or invalid values quoted per column
VALUE_WIDTH = 28  # characters of one quoted value; a long category would widen the whole table

# Finding rules about a column's values (not its presence or its blanks): their values are marked.
VALUE_RULES = {"categories", "classes", "dtype", "finite", "range"}

# How the report writes a character that Markdown or HTML would read as syntax. Entities for HTML
# (the KFP UI's renderer may pass raw HTML through), backslashes for Markdown (the renderer
# honours them, `\|` inside a table cell included). Column names, values, categories and config
# text all come from outside: none of it may open a tag, a link, emphasis, code or a table cell
# (a value never starts a line, so heading and list markers need nothing).
_MARKDOWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"} | {c: "\\" + c for c in "\\`*_~[]|"}


def markdown_text(value) -> str:
    """`value` as text that renders as itself in a Markdown table cell or line.

    A line break would end the table row, so control characters (and Unicode line separators)
    are shown as their Python escapes: a column named "a<newline>b" reads a\\nb.
    """
    out = []
    for char in str(value):
        if not char.isprintable():
            char = char.encode("unicode_escape").decode("ascii")
        out.extend(_MARKDOWN_ESCAPES.get(c, c) for c in char)
    return "".join(out)


class DataValidationError(ValueError):
    """The data breaks one or more rules of its config."""


@dataclass(frozen=True)
class Finding:
    column: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.column}: {self.rule}: {self.detail}"


@dataclass
class ColumnProfile:
    """What one column holds, beside the limits its config sets; the checks add the rules they ran."""

    name: str
    kind: str  # the config's type, "target", or "not in config"
    rows: int = 0
    present: bool = True
    nulls: int = 0
    null_limit: float | None = None  # the allowed fraction of blanks, when checked
    null_fill: object = None  # the level a blank stands for (features.fill_values)
    distinct: int = 0
    # Numeric columns: the allowed (min, max), either may be None, and the finite values' extent.
    allowed: tuple[float | None, float | None] | None = None
    observed: tuple[float, float] | None = None
    top: list[tuple[object, int]] = field(default_factory=list)  # categorical: the most frequent levels
    # Values the config does not know (an unseen level) or allow (text, infinity, out of range).
    unexpected: list[tuple[object, int]] = field(default_factory=list)
    unexpected_distinct: int = 0
    levels_checked: bool = False
    rules: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    source: str
    rows: int
    columns: int
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    checked_columns: int = 0
    profiles: dict[str, ColumnProfile] = field(default_factory=dict)
    min_rows: int | None = None
    duplicates: int | None = None
    max_duplicate_fraction: float | None = None
    derived_checked: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def checked(self, column: str, rule: str) -> None:
        """Notes that `rule` was checked on `column`, for the report's column table."""
        profile = self.profiles.get(column)
        if profile is not None and rule not in profile.rules:
            profile.rules.append(rule)

    def to_markdown(self) -> str:
        lines = _summary(self)
        for title, findings in (("Violations", self.violations), ("Warnings", self.warnings)):
            lines += _findings_section(title, findings)
        lines += _columns_section(self)
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if self.violations:
            listed = "\n".join(f"  - {finding}" for finding in self.violations)
            raise DataValidationError(
                f"{mask_credentials(self.source)} failed validation with {len(self.violations)} violation(s):\n{listed}"
            )


def number(value: float) -> str:
    """A bound or an observed value, short: thousands grouped from five digits on (not years)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    return f"{value:.4g}"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _quoted(value) -> str:
    """One value from the data, cut to VALUE_WIDTH characters and escaped; quoted where blanks at
    its ends (or nothing at all) would not show."""
    text = number(value) if isinstance(value, float) else str(value)
    if text != text.strip() or not text:
        text = repr(text)
    if len(text) > VALUE_WIDTH:
        text = text[: VALUE_WIDTH - 1].rstrip() + "…"
    return markdown_text(text)


def _value_list(counted: list[tuple[object, int]], distinct: int) -> str:
    shown = [f"{_quoted(value)} ({count:,})" for value, count in counted]
    if distinct > len(counted):
        shown.append(f"+{distinct - len(counted):,} more")
    return ", ".join(shown)


def _bold(text: str, marked: bool) -> str:
    return f"**{text}**" if marked and text else text


def _summary(report: ValidationReport) -> list[str]:
    status = "PASSED" if report.passed else "FAILED"
    rows = f"- rows: {report.rows:,}"
    if report.min_rows is not None:
        rows += f" (at least {report.min_rows:,} required)"
    lines = [
        f"# Data validation: {status}",
        "",
        f"- source: {markdown_text(mask_credentials(report.source))}",
        f"{rows}, columns: {report.columns}, columns checked: {report.checked_columns}",
    ]
    if report.duplicates is not None and report.max_duplicate_fraction is not None:
        share = report.duplicates / report.rows if report.rows else 0.0
        lines.append(
            f"- duplicate rows: {report.duplicates:,} ({percent(share)}; at most "
            f"{percent(report.max_duplicate_fraction)} allowed)"
        )
    if report.derived_checked:
        names = ", ".join(markdown_text(name) for name in report.derived_checked)
        lines.append(f"- derived features checked for infinities: {names}")
    lines += [f"- violations: {len(report.violations)}, warnings: {len(report.warnings)}", ""]
    return lines


def _findings_section(title: str, findings: list[Finding]) -> list[str]:
    lines = [f"## {title}", ""]
    if not findings:
        return [*lines, "None.", ""]
    lines += ["| column | rule | detail |", "| --- | --- | --- |"]
    lines += [f"| {markdown_text(f.column)} | {markdown_text(f.rule)} | {markdown_text(f.detail)} |" for f in findings]
    return [*lines, ""]


COLUMN_HEADER = (
    "| column | type | status | nulls (allowed) | range (allowed) | distinct | most frequent | unseen or invalid "
    "| rules checked |"
)


def _columns_section(report: ValidationReport) -> list[str]:
    failed, warned = defaultdict(list), defaultdict(list)
    for findings, into in ((report.violations, failed), (report.warnings, warned)):
        for finding in findings:
            into[finding.column].append(finding.rule)
    lines = [
        "## Columns",
        "",
        "Each column's values beside the config's limits (in parentheses); **bold** marks what broke a rule.",
        "",
        COLUMN_HEADER,
        "| --- | --- | --- | --- | --- | ---: | --- | --- | --- |",
    ]
    lines += [_column_row(p, failed.get(p.name, []), warned.get(p.name, [])) for p in report.profiles.values()]
    return [*lines, ""]


def _column_row(profile: ColumnProfile, failed: list[str], warned: list[str]) -> str:
    if not profile.present:
        cells = [_status(failed, warned), "**column missing**", "", "", "", "", ", ".join(profile.rules)]
    else:
        value_failed = bool(VALUE_RULES & set(failed))
        cells = [
            _status(failed, warned),
            _nulls_cell(profile),
            _range_cell(profile),
            f"{profile.distinct:,}",
            _value_list(profile.top, profile.distinct) if profile.top else "",
            _bold(_unexpected_cell(profile), value_failed),
            ", ".join(profile.rules) or "none",
        ]
    name = _bold(markdown_text(profile.name), bool(failed))
    return "| " + " | ".join([name, markdown_text(profile.kind), *cells]) + " |"


def _status(failed: list[str], warned: list[str]) -> str:
    if failed:
        return f"**FAILED: {', '.join(dict.fromkeys(failed))}**"
    if warned:
        return f"warning: {', '.join(dict.fromkeys(warned))}"
    return "ok"


def _nulls_cell(profile: ColumnProfile) -> str:
    share = profile.nulls / profile.rows if profile.rows else 0.0
    text = f"{profile.nulls:,} ({percent(share)})" if profile.nulls else "0"
    if profile.null_limit == 0:
        return _bold(f"{text}, none allowed", profile.nulls > 0)
    if profile.null_limit is not None:
        over = share > profile.null_limit
        return _bold(f"{text} {'>' if over else '≤'} {percent(profile.null_limit)}", over)
    if profile.null_fill is not None:
        return f"{text}, blank means {_quoted(profile.null_fill)}"
    return text


def _range_cell(profile: ColumnProfile) -> str:
    if profile.allowed is None:
        return ""
    low, high = profile.allowed
    if low is not None and high is not None:
        allowed = f"{number(low)} to {number(high)}"
    elif low is not None:
        allowed = f"≥ {number(low)}"
    elif high is not None:
        allowed = f"≤ {number(high)}"
    else:
        allowed = "any"
    if profile.observed is None:
        return f"no numbers ({allowed})"
    smallest, largest = profile.observed
    outside = (low is not None and smallest < low) or (high is not None and largest > high)
    return _bold(f"{number(smallest)} to {number(largest)}", outside) + f" ({allowed})"


def _unexpected_cell(profile: ColumnProfile) -> str:
    if profile.unexpected:
        return _value_list(profile.unexpected, profile.unexpected_distinct)
    checked = profile.levels_checked or profile.allowed is not None
    return "none" if checked and profile.rules else ""
