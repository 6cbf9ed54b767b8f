"""Screenshots of the latest local run's reports for the docs: the evaluation page and the validation Markdown.

    python -m tools.screenshots [--out docs/images] [--workdir .local]

Renders with headless Chromium (Debian's `chromium`), the Markdown through the `markdown` package as a
Markdown viewer would, and crops each image to its content.
"""

from __future__ import annotations

import argparse
import html
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_WORKDIR = ".local"
DEFAULT_OUT = "docs/images"
WIDTH = 1280
MAX_HEIGHT = 12_000  # taller pages are cut here; the validation table of ~80 columns needs about 3,000
MARGIN = 24  # pixels of background kept below the content
CHROMIUM_TIMEOUT = 120

EVALUATION_REPORT = "evaluate-model/report"
VALIDATION_REPORT = "validate-dataset/report"

# Close to the KFP UI's Markdown viewer: a plain sans-serif page, ruled tables. One line per table row
# where it fits: only a column's nulls (4th) and most frequent values (7th) and a finding's detail (3rd
# and last) wrap, or ~80 rows of the column table would each take two lines.
MARKDOWN_STYLE = """
body { font-family: Roboto, "Helvetica Neue", "DejaVu Sans", sans-serif; font-size: 12px; color: #202124;
       margin: 16px 20px; line-height: 1.4; }
h1 { font-size: 22px; font-weight: 500; margin: 0 0 10px; }
h2 { font-size: 17px; font-weight: 500; margin: 18px 0 8px; }
ul { margin: 0; padding-left: 20px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #dadce0; padding: 3px 6px; text-align: left; vertical-align: top; white-space: nowrap; }
td:nth-child(4), td:nth-child(7), td:last-child:nth-child(3) { white-space: normal; }
th { background: #f1f3f4; font-weight: 500; }
tbody tr:nth-child(even) { background: #fafafa; }
strong { color: #c5221f; }
"""


class ScreenshotError(Exception):
    """Something the person running the tool can fix; its message is the whole explanation."""


def latest_run(workdir: Path) -> Path:
    """The run directory under `workdir`/pipeline_root whose evaluation report is the newest."""
    root = workdir / "pipeline_root"
    reports = sorted(root.glob(f"*/**/{EVALUATION_REPORT}"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not reports:
        raise ScreenshotError(f"no local run with an evaluation report under {root}: run `make run` first")
    return root / reports[-1].relative_to(root).parts[0]


def run_reports(run: Path) -> tuple[Path, Path]:
    """The evaluation HTML and the validation Markdown written by one run."""
    found = []
    for name in (EVALUATION_REPORT, VALIDATION_REPORT):
        matches = sorted(run.glob(f"**/{name}"))
        if not matches:
            raise ScreenshotError(f"{run} has no {name}: run `make run` first")
        found.append(matches[0])
    return found[0], found[1]


def markdown_page(text: str, title: str) -> str:
    """The Markdown as a page, rendered as GitHub-flavoured Markdown renders it (tables; `\\~` is a tilde)."""
    import markdown

    renderer = markdown.Markdown(extensions=["tables"])
    renderer.ESCAPED_CHARS.append("~")
    body = renderer.convert(text)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{MARKDOWN_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def find_chromium(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ScreenshotError(f"{name} not found: install Chromium (Debian: apt-get install chromium)")
    return path


def screenshot(page: Path, out: Path, chromium: str, width: int = WIDTH) -> None:
    """`page` (an .html file) as a PNG from a window `width` pixels wide, cropped to its content."""
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no lock shared with another Chromium
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{MAX_HEIGHT}",
            f"--screenshot={out.resolve()}",
            page.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ScreenshotError(f"chromium took over {CHROMIUM_TIMEOUT} s on {page}") from None
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScreenshotError(f"chromium failed on {page} (exit {done.returncode}): {last}")
    crop_to_content(out)


def crop_to_content(png: Path) -> None:
    """Cuts the empty window right of and below the content (the page's own margins stay on the left and
    top) and stores the image with a palette, a few times smaller."""
    from PIL import Image, ImageChops

    with Image.open(png) as shot:
        image = shot.convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox() or (0, 0, 0, 0)
    right, bottom = min(image.width, box[2] + MARGIN), min(image.height, box[3] + MARGIN)
    image.crop((0, 0, right, bottom)).quantize(colors=256).save(png, optimize=True)


def render_reports(run: Path, out: Path, chromium: str) -> list[Path]:
    """Screenshots of the run's two reports in `out`; returns their paths."""
    evaluation, validation = run_reports(run)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        pages = Path(scratch)
        # The artifacts have no extension: as .html files Chromium reads them as pages, not text.
        evaluation_page = pages / "evaluation.html"
        shutil.copyfile(evaluation, evaluation_page)
        validation_page = pages / "validation.html"
        validation_page.write_text(markdown_page(validation.read_text(encoding="utf-8"), "Data validation"))
        for page, name in ((evaluation_page, "evaluation-report.png"), (validation_page, "validation-report.png")):
            screenshot(page, out / name, chromium)
            written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="where the PNG files go (default: %(default)s)")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help="run_local's work directory (default: %(default)s)")
    parser.add_argument("--chromium", default="chromium", help="the Chromium command (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        run = latest_run(Path(args.workdir))
        chromium = find_chromium(args.chromium)
        written = render_reports(run, Path(args.out), chromium)
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 2
    print(f"run  {run}")
    for path in written:
        print(f"png  {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
