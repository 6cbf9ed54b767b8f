import base64
import re

from lifecycle.monitoring.drift import check_drift
from lifecycle.monitoring.profile import build_profile
from lifecycle.monitoring.report import drift_report_html

SCRIPT = '<script>alert("x")</script>'


def test_report_leads_with_the_verdict_and_plots_drifted_columns(telco):
    scored = telco.test[telco.test.contract == "Month-to-month"]
    result = check_drift(telco.profile, scored, telco.predict(scored))
    page = drift_report_html(result, telco.profile)
    assert page.startswith("<!doctype html>")
    assert re.search(r"<h1>Drift: telco_churn <span class=\"drifted\">DRIFTED</span></h1>", page)
    assert page.index("Drifted columns") < page.index("<img") < page.index("All columns")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == result.drifted_count + 1  # one per drifted column, one for the predictions
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert page.count("<tr") == 1 + result.drifted_count + 1 + len(result.columns)  # two tables and their headers


def test_stable_report_has_no_plots(telco):
    result = check_drift(telco.profile, telco.test, telco.predict(telco.test))
    page = drift_report_html(result, telco.profile)
    assert '<span class="stable">STABLE</span>' in page and "<img" not in page and "No column drifted." in page


def test_values_from_the_data_are_escaped(telco):
    """A category, a column name and the data set's name that read as markup show as text."""
    from lifecycle.dataset.config import parse_config

    raw = telco.config.model_dump(mode="json")
    raw["name"] = "<b>churn</b>"
    raw["columns"] = {("$x$ " + SCRIPT if k == "contract" else k): v for k, v in raw["columns"].items()}
    config = parse_config(raw)
    hostile = "$x$ " + SCRIPT
    train = telco.train.rename(columns={"contract": hostile})
    profile = build_profile(train, telco.predict(telco.train), config)
    scored = telco.test.rename(columns={"contract": hostile}).head(300).copy()
    scored[hostile] = SCRIPT  # an unseen category in every row
    result = check_drift(profile, scored, telco.predict(telco.test.head(300)))
    assert hostile in result.drifted_columns and result.columns[hostile].unseen_values == [(SCRIPT, 300)]
    page = drift_report_html(result, profile)
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Drift: &lt;b&gt;churn&lt;/b&gt;" in page
