import os
import shutil

import pytest
from PIL import Image, ImageStat

from lifecycle.dataset.report import markdown_text
from tools.screenshots import (
    MARGIN,
    WIDTH,
    ScreenshotError,
    latest_run,
    main,
    markdown_page,
    screenshot,
)

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed: nothing to render the reports with"
)

MARKDOWN = """# Data validation: PASSED

- rows: 10

| column | values |
| --- | --- |
| {name} | **{value}** |
"""


def fake_run(root, name, *, mtime, evaluation="<html><body><h1>Evaluation</h1></body></html>"):
    """A run directory as kfp.local leaves it, holding only the two reports."""
    run = root / "pipeline_root" / name
    (run / "evaluate-model").mkdir(parents=True)
    (run / "validate-dataset").mkdir(parents=True)
    (run / "evaluate-model" / "report").write_text(evaluation)
    (run / "validate-dataset" / "report").write_text(MARKDOWN.format(name="Lot\\_Area", value="x"))
    os.utime(run / "evaluate-model" / "report", (mtime, mtime))
    return run


def test_the_newest_evaluation_report_picks_the_run(tmp_path):
    fake_run(tmp_path, "training-b", mtime=1_000)
    newest = fake_run(tmp_path, "training-a", mtime=2_000)
    (tmp_path / "pipeline_root" / "batch-scoring-c" / "score").mkdir(parents=True)  # no evaluation report
    assert latest_run(tmp_path) == newest


def test_without_a_run_the_tool_says_to_make_one(tmp_path, capsys):
    with pytest.raises(ScreenshotError, match="run `make run` first"):
        latest_run(tmp_path)
    assert main(["--workdir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "run `make run` first" in error
    assert not (tmp_path / "out").exists()


def test_without_chromium_the_tool_says_so(tmp_path, capsys):
    fake_run(tmp_path, "training-a", mtime=1_000)
    assert main(["--workdir", str(tmp_path), "--out", str(tmp_path / "out"), "--chromium", "no-such-chromium"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no-such-chromium not found" in error


def test_markdown_renders_as_a_table_with_escaped_values_as_text():
    name, value = "<script>x</script> a|b ~c~", "*not emphasis*"
    page = markdown_page(MARKDOWN.format(name=markdown_text(name), value=markdown_text(value)), "Data validation")
    assert "<table>" in page and "<h1>Data validation: PASSED</h1>" in page
    assert "<script>" not in page
    assert "<td>&lt;script&gt;x&lt;/script&gt; a|b ~c~</td>" in page  # one cell, tildes without backslashes
    assert "<td><strong>*not emphasis*</strong></td>" in page


def pixels_vary(image: Image.Image) -> bool:
    return any(deviation > 10 for deviation in ImageStat.Stat(image.convert("RGB")).stddev)


@needs_chromium
def test_a_page_becomes_a_png_cropped_to_its_content(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(
        "<html><body style='margin:0;background:#fff'>"
        "<div style='width:400px;height:300px;background:#1a73e8;color:#fff;font-size:40px'>Holdout metrics</div>"
        "</body></html>"
    )
    png = tmp_path / "report.png"
    screenshot(page, png, "chromium")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (400 + MARGIN, 300 + MARGIN)  # the window was WIDTH by MAX_HEIGHT
        assert pixels_vary(image)
        pixels = image.convert("RGB")
    assert pixels.getpixel((390, 290)) == (0x1A, 0x73, 0xE8)  # the block, below its text
    assert pixels.getpixel((pixels.width - 1, pixels.height - 1)) == (255, 255, 255)  # the margin kept


@needs_chromium
def test_the_tool_writes_both_reports_of_the_latest_run(tmp_path, capsys):
    evaluation = (
        "<html><body><h1>Evaluation: ames</h1><table><tr><td>test_rmse</td><td>1.0</td></tr></table></body></html>"
    )
    fake_run(tmp_path, "training-a", mtime=1_000, evaluation=evaluation)
    out = tmp_path / "images"
    assert main(["--workdir", str(tmp_path), "--out", str(out)]) == 0
    for name in ("evaluation-report.png", "validation-report.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and MARGIN < image.width < WIDTH
            assert MARGIN < image.height < 400  # a short page: cropped well within the window
            assert pixels_vary(image)
    assert "validation-report.png" in capsys.readouterr().out
