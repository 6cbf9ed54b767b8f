import numpy as np
import pandas as pd
import pytest

from lifecycle.dataset.config import parse_config
from lifecycle.dataset.validate import (
    DataValidationError,
    markdown_text,
    validate_frame,
)


def violations(frame, config):
    return [str(v) for v in validate_frame(frame, config, "data.csv").violations]


def test_bundled_data_passes(ames_raw, ames_config, telco_raw, telco_config):
    for frame, config in ((ames_raw, ames_config), (telco_raw, telco_config)):
        report = validate_frame(frame, config, "bundled")
        assert report.passed, report.to_markdown()
        assert report.checked_columns == len(config.columns)


def test_missing_required_column(ames_raw, ames_config):
    assert violations(ames_raw.drop(columns=["Lot_Area"]), ames_config) == [
        "Lot_Area: required: required column is missing"
    ]


def test_text_in_numeric_column(ames_raw, ames_config):
    frame = ames_raw.copy()
    frame["Gr_Liv_Area"] = frame["Gr_Liv_Area"].astype(object)
    frame.loc[3, "Gr_Liv_Area"] = "large"
    assert violations(frame, ames_config) == ["Gr_Liv_Area: dtype: expected numbers, found text in 1 row(s): 'large'"]


def test_target_all_empty(ames_raw, ames_config):
    frame = ames_raw.assign(Sale_Price=np.nan)
    assert violations(frame, ames_config) == ["Sale_Price: target: target is empty in every row"]


def test_negative_prices_are_out_of_range(ames_raw, ames_config):
    frame = ames_raw.copy()
    frame.loc[:4, "Sale_Price"] = -1000
    found = violations(frame, ames_config)
    assert "Sale_Price: range: 5 value(s) below minimum 1: -1000" in found


def test_nulls_over_the_limit(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[: len(frame) // 2, "tenure"] = np.nan
    assert any(v.startswith("tenure: nulls: 50.0% missing") for v in violations(frame, telco_config))


def test_level_meaning_blanks_are_not_nulls(ames_raw, ames_config):
    """Misc_Feature is 96% empty, and empty means "None": that passes."""
    assert ames_raw["Misc_Feature"].isna().mean() > 0.9
    assert validate_frame(ames_raw, ames_config, "x").passed


def test_unseen_category_is_a_warning_not_a_violation(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[0, "contract"] = "Three year"
    report = validate_frame(frame, telco_config, "x")
    assert report.passed
    assert [str(w) for w in report.warnings] == [
        "contract: categories: 1 value(s) outside the known levels: 'Three year'"
    ]
    assert "| contract | categories |" in report.to_markdown()


def test_unknown_label_and_duplicates(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[0, "churn"] = "Maybe"
    frame = pd.concat([frame, frame.iloc[1:201]], ignore_index=True)
    found = violations(frame, telco_config)
    assert "churn: classes: 1 label(s) not in ['No', 'Yes']: 'Maybe'" in found
    assert any(v.startswith("(table): duplicates:") for v in found)


def test_one_error_names_every_violation(ames_raw, ames_config):
    frame = ames_raw.drop(columns=["Lot_Area", "Neighborhood"]).head(100)
    report = validate_frame(frame, ames_config, "ames.csv")
    with pytest.raises(DataValidationError) as failure:
        report.raise_if_failed()
    message = str(failure.value)
    assert message.startswith("ames.csv failed validation with 3 violation(s):")
    for part in ("(table): min_rows: 100 rows", "Lot_Area: required", "Neighborhood: required"):
        assert part in message
    assert "# Data validation: FAILED" in report.to_markdown()


def test_infinite_values_are_violations(telco_raw, telco_config, ames_raw, ames_config):
    frame = telco_raw.copy()
    frame.loc[[3, 5], "monthly_charges"] = [np.inf, -np.inf]
    assert violations(frame, telco_config) == ["monthly_charges: finite: 2 infinite value(s): inf, -inf"]
    frame = ames_raw.copy()
    frame.loc[7, "Sale_Price"] = np.inf
    assert violations(frame, ames_config) == ["Sale_Price: finite: 1 infinite value(s): inf"]


def test_infinite_derived_feature_is_a_violation(telco_raw, telco_config):
    """Derived features are computed inside the model, after validation: validate computes them too."""
    raw = telco_config.model_dump(mode="json")
    raw["features"]["derived"]["charges_per_line"] = "monthly_charges / (phone_service - 1)"
    config = parse_config(raw)
    with_phone = int((telco_raw["phone_service"] == 1).sum())
    assert violations(telco_raw, config) == [
        "charges_per_line: finite: derived feature 'monthly_charges / (phone_service - 1)' is infinite in "
        f"{with_phone} row(s)"
    ]
    raw["processing"]["clip"] = {"phone_service": [None, 0.5]}  # clipped as process would, never 1
    assert violations(telco_raw, parse_config(raw)) == []


def test_target_the_promotion_metric_cannot_score(ames_raw, ames_config):
    """Evaluation leaves RMSLE out for a target of zero or less; registration would then fail last."""
    raw = ames_config.model_dump(mode="json")
    raw["target"].update(min=None, transform="none")
    config = parse_config(raw)
    frame = ames_raw.copy()
    frame.loc[:2, "Sale_Price"] = [0, -5, 0]
    assert violations(frame, config) == [
        "Sale_Price: metric: registry.metric test_rmsle needs target values above 0; 3 value(s) are not: 0, -5"
    ]
    raw["registry"]["metric"] = "test_rmse"
    assert violations(frame, parse_config(raw)) == []


def test_rare_class_needs_rows_for_the_split_and_every_fold(telco_raw, telco_config):
    frame = telco_raw.copy()
    positives = frame.index[frame["churn"] == "Yes"]
    frame.loc[positives[3:], "churn"] = "No"
    # 7043 rows: a 1409-row holdout, and 5634 training rows in 5 folds.
    assert violations(frame, telco_config) == [
        "churn: classes: class 'Yes' has 3 row(s); a 20% stratified holdout and 5-fold cross-validation over 7043 "
        "rows need at least 7"
    ]
    frame.loc[positives[3:7], "churn"] = "Yes"
    assert violations(frame, telco_config) == []


def test_an_optional_column_may_be_blank_but_not_absent(ames_raw, ames_config):
    """Every configured column goes into the featurizer; an absent one used to fail there, unnamed."""
    config = ames_config.model_copy(
        update={
            "columns": {
                **ames_config.columns,
                "Lot_Area": ames_config.columns["Lot_Area"].model_copy(update={"required": False}),
            }
        }
    )
    some_blank = ames_raw.copy()
    some_blank.loc[:9, "Lot_Area"] = None
    assert violations(some_blank, config) == []
    assert violations(ames_raw.drop(columns=["Lot_Area"]), config) == [
        "Lot_Area: required: column is missing (required: false allows blanks, not an absent column)"
    ]


# ---- the Markdown report: every value from the data or the config is shown as text -----------------

HOSTILE = [
    "<script>alert(1)</script>",
    "| pipe",
    "`tick` and ``two``",
    "*star* _under_ ~strike~",
    "line\nbreak\r\nand\u2028more",
    "[link](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "back\\slash\\|",
    "&lt;entity&gt;",
]


def cells(row: str) -> list[str]:
    """A GFM table row's cells: split on every pipe that no backslash escapes."""
    found, current, chars = [], "", iter(row.strip())
    for char in chars:
        if char == "\\":
            current += char + next(chars, "")
        elif char == "|":
            found.append(current)
            current = ""
        else:
            current += char
    return found[1:]  # the text before the row's leading pipe


def unescaped(text: str) -> str:
    """What a Markdown renderer shows for text made by markdown_text."""
    out, chars = "", iter(text)
    for char in chars:
        out += next(chars, "") if char == "\\" else char
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def as_shown(value: str) -> str:
    """A value as the report shows it: control characters and line separators as their escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value)


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_text_renders_as_the_value_and_nothing_else(value):
    text = markdown_text(value)
    assert not {"<", ">", "\n", "\r", "\u2028"} & set(text)
    assert len(cells(f"| {text} |")) == 1
    assert unescaped(text) == as_shown(value)


def test_hostile_names_and_values_stay_inside_their_cells(telco_raw, telco_config):
    frame = telco_raw.copy()
    for i, name in enumerate(HOSTILE):
        frame[name] = i  # columns the config does not know: one warning each, the name in the first cell
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[: len(HOSTILE) - 1, "contract"] = HOSTILE  # unseen levels, quoted in the detail cell
    raw = telco_config.model_dump(mode="json")
    raw["columns"]["<b>missing|column</b>"] = {"type": "numeric"}  # a config name, in a violation
    report = validate_frame(frame, parse_config(raw), "https://user:p@ss@data.example/x_<script>.csv")
    page = report.to_markdown()
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<b>" not in page
    assert "p@ss" not in page and "https://\\*\\*\\*@data.example/x\\_&lt;script&gt;.csv" in page
    findings, columns = page.split("## Columns")
    table_rows = [line for line in findings.splitlines() if line.startswith("|")]
    assert len(table_rows) == 2 * 2 + len(report.violations) + len(report.warnings)  # header + rule per table
    assert all(len(cells(row)) == 3 for row in table_rows)
    shown = {unescaped(cells(row)[0]).strip() for row in table_rows}
    assert {as_shown(name) for name in HOSTILE} <= shown
    assert "<b>missing|column</b>" in shown
    contract = [row for row in table_rows if unescaped(cells(row)[0]).strip() == "contract"]
    assert len(contract) == 1 and "'| pipe'" in unescaped(cells(contract[0])[2])
    # The column table: one row of nine cells per column, the hostile names and levels inside theirs.
    column_rows = [line for line in columns.splitlines() if line.startswith("|")]
    assert len(column_rows) == 2 + len(report.profiles)
    assert all(len(cells(row)) == len(COLUMN_CELLS) for row in column_rows)
    table = column_table(report)
    assert {as_shown(name) for name in HOSTILE} | {"<b>missing|column</b>"} <= set(table)
    assert table["<b>missing|column</b>"]["status"] == "**FAILED: required**"
    assert table["contract"]["unseen"] == "<script>alert(1)</script> (1), | pipe (1), `tick` and ``two`` (1), +6 more"


# ---- the column table: each column's values beside its rules --------------------------------------

COLUMN_CELLS = ["column", "type", "status", "nulls", "range", "distinct", "top", "unseen", "rules"]


def column_table(report) -> dict[str, dict[str, str]]:
    """The report's column table as shown: each row's cells by header, the rows by column name."""
    section = report.to_markdown().split("## Columns", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # after header and rule
    table = {}
    for row in rows:
        shown = dict(zip(COLUMN_CELLS, (unescaped(cell).strip() for cell in cells(row)), strict=True))
        table[shown.pop("column").removeprefix("**").removesuffix("**")] = shown
    return table


def test_a_passing_report_profiles_every_column(ames_raw, ames_config):
    report = validate_frame(ames_raw, ames_config, "ames.csv")
    page = report.to_markdown()
    assert "# Data validation: PASSED" in page
    assert "- rows: 2,930 (at least 500 required), columns: 74, columns checked: 73" in page
    assert "- duplicate rows: 0 (0%; at most 1% allowed)" in page
    assert "- derived features checked for infinities: Total_SF, House_Age, Years_Since_Remodel" in unescaped(page)
    table = column_table(report)
    assert list(table) == [*ames_config.columns, "Sale_Price"]
    assert table["Neighborhood"] == {
        "type": "categorical",
        "status": "ok",
        "nulls": "0 ≤ 20%",
        "range": "",
        "distinct": "28",
        "top": "North_Ames (443), College_Creek (267), Old_Town (239), +25 more",
        "unseen": "none",
        "rules": "nulls, categories",
    }
    assert table["Year_Built"] == {
        "type": "numeric",
        "status": "ok",
        "nulls": "0 ≤ 20%",
        "range": "1872 to 2010 (1800 to 2030)",
        "distinct": "118",
        "top": "",
        "unseen": "none",
        "rules": "nulls, dtype, finite, range",
    }
    # Blanks that stand for a level are counted, not held to the null limit.
    assert table["Misc_Feature"]["nulls"] == "2,824 (96.4%), blank means None"
    assert table["Misc_Feature"]["rules"] == "categories"
    assert table["Sale_Price"]["range"] == "12,789 to 755,000 (≥ 1)"
    assert table["Sale_Price"]["nulls"] == "0, none allowed"
    assert table["Sale_Price"]["rules"] == "target, dtype, finite, range"
    # A value with a blank at its end is quoted, or its blank would not show.
    assert table["Sale_Type"]["top"].startswith("'WD ' (2,536), New (239)")
    assert not any("**" in cell for row in table.values() for cell in row.values())


def test_a_failing_report_marks_the_broken_rules_and_values(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[: len(frame) // 2, "tenure"] = np.nan
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[3, "monthly_charges"] = "1,000"
    frame.loc[[5, 6], "total_charges"] = [-5, np.inf]
    frame.loc[7, "churn"] = "Maybe"
    frame = frame.drop(columns=["partner"]).assign(note="x")
    report = validate_frame(frame, telco_config, "telco.csv")
    page = report.to_markdown()
    assert "# Data validation: FAILED" in page
    for violation in report.violations:  # the messages of the failure, each in the violations table
        assert f"| {violation.rule} | {markdown_text(violation.detail)} |" in page
    table = column_table(report)
    assert list(table) == [*telco_config.columns, "churn", "note"]
    assert table["partner"]["status"] == "**FAILED: required**"
    assert table["partner"]["nulls"] == "**column missing**"
    assert table["tenure"]["status"] == "**FAILED: nulls**"
    assert table["tenure"]["nulls"] == "**3,522 (50%) > 1%**"
    assert table["monthly_charges"]["status"] == "**FAILED: dtype**"
    assert table["monthly_charges"]["unseen"] == "**'1,000' (1)**"  # text, quoted: not the number 1,000
    assert table["monthly_charges"]["rules"] == "nulls, dtype"  # the range is not checked on text
    assert table["total_charges"]["status"] == "**FAILED: finite, range**"
    assert table["total_charges"]["range"].startswith("**-5 to 8685** (≥ 0)")
    assert table["total_charges"]["unseen"] == "**inf (1), -5 (1)**"
    assert table["churn"]["status"] == "**FAILED: classes**"
    assert table["churn"]["top"] == "No (5,173), Yes (1,869), Maybe (1)"
    assert table["churn"]["unseen"] == "**Maybe (1)**"
    assert table["note"] == {
        "type": "not in config",
        "status": "warning: unexpected",
        "nulls": "0",
        "range": "",
        "distinct": "1",
        "top": "x (7,043)",
        "unseen": "",
        "rules": "none",
    }
    assert table["female"]["status"] == "ok" and "**" not in "".join(table["female"].values())


def test_unseen_categories_are_counted_and_marked_only_when_strict(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[:5, "contract"] = ["Three year", "Three year", "Ten year", "Daily", "Hourly", "Three year"]
    table = column_table(validate_frame(frame, telco_config, "x"))
    assert table["contract"]["status"] == "warning: categories"
    assert table["contract"]["unseen"] == "Three year (3), Ten year (1), Daily (1), +1 more"
    raw = telco_config.model_dump(mode="json")
    raw["columns"]["contract"]["strict_categories"] = True
    table = column_table(validate_frame(frame, parse_config(raw), "x"))
    assert table["contract"]["status"] == "**FAILED: categories**"
    assert table["contract"]["unseen"] == "**Three year (3), Ten year (1), Daily (1), +1 more**"


def test_long_values_are_cut_and_only_configured_rules_are_listed(telco_raw, telco_config):
    raw = telco_config.model_dump(mode="json")
    raw["columns"]["tenure"].update(min=None, max=None)
    raw["columns"]["tenure"]["max_null_fraction"] = 0.6
    raw["columns"]["payment_method"]["categories"] = None
    frame = telco_raw.copy()
    frame.loc[: len(frame) // 2, "tenure"] = np.nan
    frame.loc[:2999, "payment_method"] = "a very long payment method name, longer than any column should be"
    table = column_table(validate_frame(frame, parse_config(raw), "x"))
    assert table["tenure"]["range"] == "0 to 72 (any)"
    assert table["tenure"]["nulls"] == "3,522 (50%) ≤ 60%"
    assert table["tenure"]["rules"] == "nulls, dtype, finite"
    assert table["payment_method"]["rules"] == "nulls"
    assert table["payment_method"]["unseen"] == ""  # no levels configured: nothing is unseen
    assert table["payment_method"]["top"].startswith("a very long payment method… (3,000), ")
