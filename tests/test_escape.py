"""No injection: user-controlled text (run and dataset names, rows, model outputs, file names, Hub ids, lint messages
quoting rows) goes through every Markdown and HTML rendering path and comes out as the literal text, with nothing
active: no image, link, autolink, script, event handler, code span of its own or extra table cell.

Markdown is rendered the way a GitHub-flavoured renderer does (CommonMark + tables + strikethrough + autolinks);
HTML is parsed and its tags and attributes inspected.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from studio import escape

# A name-sized payload (dataset names are cut at 80 characters) and a longer one for rows and model outputs.
NAME = "![x](http://e.vil/p) <img src=x onerror=alert(1)> [l](javascript:a) `c` | p"
TEXT = (
    "![x](http://evil.example/px.png) <img src=x onerror=alert(1)> [link](javascript:alert(1)) `code` ``more`` "
    "a | b | c <script>alert(1)</script> www.evil.example https://evil.example/a <http://evil.example> "
    "a@evil.example **bold** _it_ ~~gone~~ &lt;b&gt; \\[not\\]"
)
BLOCK = "# heading\n- item\n1. one\n> quote\n---\n" + TEXT  # line-start syntax too, where newlines are kept
DANGEROUS_TAGS = {
    "img",
    "a",
    "script",
    "iframe",
    "object",
    "embed",
    "form",
    "input",
    "link",
    "meta",
    "base",
    "video",
    "audio",
    "source",
    "image",
    "frame",
    "button",
    "textarea",
    "select",
}


class _Inspector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.bad: list[str] = []
        self.text: list[str] = []
        self.tables: list[list[int]] = []  # cells per row, per table
        self._cells = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in DANGEROUS_TAGS:
            self.bad.append(f"<{tag}>")
        for name, value in attrs:
            if name.lower().startswith("on") or "javascript:" in (value or "").lower().replace(" ", ""):
                self.bad.append(f"{tag}[{name}={value}]")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._cells = 0
        elif tag in ("td", "th"):
            self._cells += 1
        elif tag == "br":
            self.text.append("\n")

    def handle_endtag(self, tag):
        if tag == "tr" and self.tables:
            self.tables[-1].append(self._cells)

    def handle_data(self, data):
        self.text.append(data)


def inspect(html_text: str) -> _Inspector:
    inspector = _Inspector()
    inspector.feed(html_text)
    inspector.close()
    return inspector


def render_markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"linkify": True, "html": True}).enable(["table", "strikethrough", "linkify"])
    renderer.linkify.set({"fuzzy_link": False})  # like GitHub and Gradio's renderer: www. and scheme:// only
    return renderer.render(text)


def _squash(text: str) -> str:
    return " ".join(text.split())


def assert_literal_markdown(markdown: str, *payloads: str, allowed_tags: set[str] = frozenset()) -> None:
    """The Markdown renders with nothing active, every payload shows as typed (whitespace aside), tables stay square."""
    found = inspect(render_markdown(markdown))
    assert [tag for tag in found.bad if tag.strip("<>") not in allowed_tags] == [], (found.bad, markdown)
    shown = _squash("".join(found.text))
    for payload in payloads:
        assert _squash(payload) in shown, (payload, shown)
    for table in found.tables:
        assert len(set(table)) <= 1, f"a table row has extra cells: {table}"


def assert_literal_html(page: str, *payloads: str, allowed_tags: set[str] = frozenset()) -> None:
    found = inspect(page)
    assert [tag for tag in found.bad if tag.strip("<>") not in allowed_tags] == [], found.bad
    shown = _squash("".join(found.text))
    for payload in payloads:
        assert _squash(payload) in shown, (payload, shown[:2000])
    for table in found.tables:
        assert len(set(table)) <= 1, f"a table row has extra cells: {table}"


# ---------------------------------------------------------------- the helpers themselves


def test_the_payloads_are_active_when_not_escaped():
    """The checker itself: unescaped, these payloads do render as images, links, scripts and code."""
    raw = inspect(render_markdown(TEXT))
    assert {"<img>", "<a>", "<script>"} <= set(raw.bad) and "code" in raw.tags
    cut = inspect(render_markdown("| h |\n|---|\n| " + TEXT + " |"))  # a pipe ends the cell; the rest is dropped
    assert "b | c" not in "".join(cut.text) and cut.tables == [[1, 1]]


@pytest.mark.parametrize(
    "payload", [TEXT, BLOCK, NAME, "", "plain words", "tab\there", "snake_case_name", "50% off; 3/4"]
)
def test_md_renders_literally_and_round_trips(payload):
    assert_literal_markdown(escape.md(payload), payload)
    assert_literal_markdown(escape.md_inline(payload), _squash(payload))
    assert escape.unmd(escape.md(payload)) == payload
    assert_literal_markdown(f"| h |\n|---|\n| {escape.md_cell(payload)} |", payload)
    assert_literal_html(f"<p>{escape.html(payload)}</p>", payload)


def test_md_code_shows_any_text_verbatim():
    for payload in ("a`b``c", "`start", "end`", NAME):
        found = inspect(render_markdown(f"x {escape.md_code(payload)} y"))
        assert found.bad == [] and found.tags.count("code") == 1 and _squash(payload) in "".join(found.text)


def test_plain_text_stays_readable():
    assert escape.md("assistant_style 3.5 - 2 = 1.5 (ok), 50% off") == "assistant_style 3.5 - 2 = 1.5 (ok), 50% off"


# ---------------------------------------------------------------- every rendering path


def _manifest_folder(folder: Path, name: str, source_name: str = "chat.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    row = {"messages": [{"role": "user", "content": TEXT}, {"role": "assistant", "content": TEXT}]}
    (folder / "train.jsonl").write_text(json.dumps(row) + "\n")
    (folder / "validation.jsonl").write_text(json.dumps(row) + "\n")
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "id": folder.name,
                "name": name,
                "source_name": source_name,
                "counts": {"train": 1, "validation": 1, "rejected": 0},
                "stats": {},
                "format": "messages",
            }
        )
    )
    return folder


def _evaluation() -> dict:
    row = {
        "prompt": TEXT,
        "messages": [{"role": "user", "content": TEXT}],
        "reference": TEXT,
        "base": TEXT,
        "tuned": TEXT,
        "base_loss": 2.0,
        "tuned_loss": 1.0,
        "base_rouge_l": 0.1,
        "tuned_rouge_l": 0.2,
    }
    summary = {
        "prompts": 1,
        "with_reference": 1,
        "base_loss": 2.0,
        "tuned_loss": 1.0,
        "base_perplexity": 7.4,
        "tuned_perplexity": 2.7,
        "improved": 1,
        "style_marker": {"prefix": NAME, "suffix": NAME},
        "style_parts": {"prefix": {"base": 0, "tuned": 1}},
    }
    return {"created_at": 1.0, "source": NAME, "settings": {"max_new_tokens": 16}, "rows": [row], "summary": summary}


def test_compare_report_html_and_markdown(tmp_path):
    from studio.compare import report
    from studio.compare.runs import RunInfo

    dataset = _manifest_folder(tmp_path / "data", NAME)
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["dismissals"] = [{"rule": "PII-EMAIL", "row": None, "reason": TEXT, "created_at": ""}]
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    run = RunInfo(
        run_id="run-x",
        dir=tmp_path / "run",
        adapter_dir=tmp_path / "run" / "adapter",
        base_ref=NAME,
        config={"name": NAME, "dataset": str(dataset), "model": NAME, "epochs": 1},
        status={"status": "completed"},
    )
    ballot = {"items": [{"index": 0, "tuned_is": "A"}], "votes": {"0": "A"}, "label": NAME}
    page, markdown = report.build(run, _evaluation(), [ballot, {**ballot, "label": "Voter 2"}])
    assert_literal_html(page, TEXT, NAME, allowed_tags={"meta"})
    assert page.count("<meta") == 2 and page.count("<table") == 1  # its own head and table
    assert_literal_markdown(markdown, NAME, _squash(TEXT))


def test_train_tab_header_status_and_messages(tmp_path):
    from studio.train.store import RunRecord
    from studio.ui import train_form, train_live

    dataset = _manifest_folder(tmp_path / "data", NAME)
    record = RunRecord(
        "run-abcd",
        tmp_path / "run",
        {"name": NAME, "model": NAME, "dataset": str(dataset)},
        {
            "status": "failed",
            "error": {"message": TEXT, "hint": NAME},
            "notes": [TEXT],
            "started_at": "2026-01-01T00:00:00",
        },
    )
    (tmp_path / "run").mkdir()
    assert_literal_markdown(train_live._run_header(record, None), NAME)
    assert_literal_markdown(train_live._status_markdown(record, [], None), _squash(TEXT), NAME)
    stopped = RunRecord("run-abcd", tmp_path / "run", record.config, {**record.status, "status": "stopped"})
    assert_literal_markdown(train_live._status_markdown(stopped, [], None), _squash(TEXT))
    summary = train_form.describe_dataset(str(dataset))["dataset_info"]
    assert_literal_markdown(summary, NAME)
    missing = train_form.describe_dataset(str(tmp_path / NAME.replace("/", "_")))["dataset_info"]
    assert_literal_markdown(missing, NAME.replace("/", "_"), allowed_tags=set())


def test_error_messages_quote_names_literally():
    from studio.errors import StudioError
    from studio.ui.shared import message_markdown

    assert_literal_markdown(
        message_markdown(StudioError(f"No run called '{TEXT}' was found.", NAME)), _squash(TEXT), NAME
    )
    assert_literal_markdown(message_markdown(ValueError(TEXT)), _squash(TEXT))


def test_data_tab_renders_file_names_rows_and_lint_messages(tmp_path, tiny_model_dir):
    from studio.data.records import Finding
    from studio.ui import data_tab

    upload = tmp_path / "upload.jsonl"
    topics = [
        "apples ripen late in the cool northern orchards",
        "the night train leaves platform four at nine",
        "bees carry pollen between the clover fields daily",
        "old maps show rivers that have since moved east",
        "a copper kettle whistles louder than a steel one",
        "winter storms close the mountain pass for weeks",
    ]
    # Varied rows (rows differing only by a number are near-duplicates, and then no split is possible).
    rows = [
        {"messages": [{"role": "user", "content": f"{TEXT} {topic}"}, {"role": "assistant", "content": TEXT}]}
        for topic in topics
    ]
    upload.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken line " + TEXT + "\n")
    source = {"kind": "upload", "path": str(upload), "name": NAME}
    state, stats, _ = data_tab.lint_source(source, str(tiny_model_dir), 0, 8)
    report = state["report"]
    report.findings.append(Finding("CONTENT-TEST", "W", 1, f"Row quotes: {TEXT}", f"Hint quoting {NAME}"))
    fmt = data_tab.format_markdown(report, source, NAME, 64, stats)
    assert_literal_markdown(fmt, NAME)
    opened = data_tab.row_view(state, 1)
    chat, tokens, notes = opened["chat"], opened["tokens"], opened["notes"]
    assert_literal_html(chat, _squash(TEXT))
    assert_literal_html(tokens)
    assert_literal_markdown(notes, _squash(TEXT), NAME, allowed_tags=set())
    verdict = data_tab.verdict_html(report, stats)
    assert_literal_html(verdict)
    from studio.data.stats import report_markdown, summary_markdown, system_prompts_chart

    assert_literal_markdown(report_markdown(report, stats, source_name=NAME, verdict="warnings"), NAME, _squash(TEXT))
    assert_literal_markdown(summary_markdown({**stats, "model": NAME}))
    figure = system_prompts_chart(
        {"system_prompts": {"top": [{"prompt": "<b>x</b><a href='http://e'>y</a>", "rows": 2}], "rows_without": 0}}
    )
    assert not any("<" in label for label in figure.data[0].y)  # Plotly would render tags in labels
    # Dismissal reasons and column names are typed by people: literal in the tab, the status and report.md.
    from studio.data import dismissals
    from studio.data.mapping import ColumnMapping

    dismissal = {"rule": NAME, "row": 1, "reason": TEXT, "created_at": ""}
    assert_literal_markdown(
        data_tab.dismissed_markdown({"dismissals": [dismissal], "carried_from": NAME}, {}), _squash(TEXT), NAME
    )
    assert_literal_markdown(dismissals.markdown([dismissal]), _squash(TEXT), NAME)
    from studio.data.records import Row

    columns = ColumnMapping(user=NAME, assistant="answer", context=[TEXT])
    table = [Row(number=1, raw={NAME: TEXT, "answer": TEXT, TEXT: "context"})]
    assert_literal_html(data_tab.preview_html(table, columns), NAME, _squash(TEXT))
    # The whole file-level path too: a file whose first error quotes it.
    saved = data_tab.fix_and_split(state, 10, 0, NAME, progress=None)
    result, folder = saved["fix_result"], saved["dataset"]
    assert_literal_markdown(result, NAME)
    assert_literal_markdown((Path(folder) / "report.md").read_text(encoding="utf-8"), NAME, _squash(TEXT))


def test_compare_tab_summary_evaluation_votes_and_chat(tmp_path):
    from types import SimpleNamespace

    from studio.compare.runs import RunInfo
    from studio.ui import compare_tab

    dataset = _manifest_folder(tmp_path / "data", NAME)
    run = RunInfo(
        run_id="r",
        dir=tmp_path,
        adapter_dir=tmp_path,
        base_ref=NAME,
        config={"name": NAME, "dataset": str(dataset)},
        status={},
    )
    assert_literal_markdown(compare_tab._run_summary(SimpleNamespace(run=run, run_b=run)), NAME)
    shown = compare_tab._eval_outputs(run, {**_evaluation(), "settings": {"source": NAME}})
    verdict, headline = shown["eval_verdict"], shown["eval_headline"]
    assert_literal_markdown(verdict)
    assert_literal_markdown(headline, NAME)
    ballot = {"items": [{"index": 0, "tuned_is": "A"}], "votes": {}, "label": "Voter 1"}
    ballot_view = compare_tab._ab_render("voter-1", run, _evaluation(), ballot)
    who, prompt, a, b = (ballot_view[name] for name in ("who", "prompt", "a", "b"))
    assert_literal_markdown(who)
    assert_literal_markdown(prompt, _squash(TEXT))
    assert a == b == TEXT  # answers go to plain Textboxes
    shown = compare_tab._shown(BLOCK)
    assert_literal_markdown(shown, BLOCK)
    history = [{"role": "user", "content": [{"type": "text", "text": shown}]}, {"role": "assistant", "content": shown}]
    assert [m["content"] for m in compare_tab._history_messages(history)] == [BLOCK, BLOCK]  # the model sees the text


def test_preflight_decide_and_model_card(tmp_path, tiny_model_dir):
    from studio.decide import plan as plan_mod
    from studio.decide import report as decide_report
    from studio.train import preflight
    from studio.train.config import RunConfig
    from studio.ui import decide_tab

    dataset = _manifest_folder(tmp_path / "data", NAME, source_name=NAME)
    config = RunConfig(name=NAME, model=str(tiny_model_dir), dataset=str(dataset), max_steps=2)
    typed_model = config.replace(model=NAME)  # its message quotes the model id as typed
    assert_literal_markdown(preflight.run_preflight(typed_model, check_busy=False).markdown(), NAME)

    stats = {"rows": 10, "tokens": {"total": 1000}, "max_length": 64, "model": NAME}
    plan = plan_mod.compute(plan_mod.PlanInputs(), None, stats, NAME)
    assert_literal_markdown(decide_tab._dataset_line(plan.dataset_label))
    assert_literal_markdown(decide_report.decision_record(plan))

    from huggingface_hub import ModelCard

    from studio.train import card, store

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    store.update_status(run_dir, status="completed", notes=[TEXT])
    written = ModelCard.load(card.write_card(run_dir, run_dir))
    assert written.data.model_name == NAME  # the YAML keeps the name as typed; the Hub renders only the body
    assert_literal_markdown(written.text, NAME, _squash(TEXT))


def test_components_that_show_user_text_render_it_as_text():
    """Tables and pickers: Gradio shows "str" cells and choices as text; none may switch to markdown or html
    (the findings table's first column is the studio's own severity badge)."""
    import app

    for block in app.demo.blocks.values():
        kind = type(block).__name__
        if kind == "Dataframe":
            types = block.datatype if isinstance(block.datatype, list) else [block.datatype]
            allowed = {"str", "number", "bool", "date"} | ({"html"} if block.elem_id == "data-findings" else set())
            assert set(types) <= allowed, (block.elem_id, types)
        if kind == "Chatbot":
            assert block.sanitize_html, block.elem_id


def test_progress_bar_html(tmp_path):
    from studio.train import charts

    assert_literal_html(
        charts.progress_html({"status": "<img src=x onerror=alert(1)>", "step": 1, "total_steps": 2}, [])
    )


def test_row_view_html_escapes_roles_and_tool_calls():
    from studio.data import rowview

    page = rowview.chat_html(
        [{"role": NAME, "content": TEXT, "tool_calls": [{"function": {"name": TEXT}}]}, "not a message " + TEXT]
    )
    assert_literal_html(page, _squash(TEXT), NAME)


def test_every_renderer_uses_the_one_helper():
    """Every module that builds Markdown or HTML from user text imports the one helper (a cheap guard against a new
    renderer that forgets it)."""
    root = Path(__file__).resolve().parent.parent / "studio"
    builders = [
        "compare/report.py",
        "data/dismissals.py",
        "data/stats.py",
        "data/rowview.py",
        "decide/report.py",
        "train/charts.py",
        "train/preflight.py",
        "train/card.py",
        "ui/compare_tab.py",
        "ui/data_tab.py",
        "ui/decide_tab.py",
        "ui/shared.py",
        "ui/train_actions.py",
        "ui/train_form.py",
        "ui/train_live.py",
    ]
    for name in builders:
        text = (root / name).read_text(encoding="utf-8")
        assert re.search(r"from studio import [^\n]*\bescape\b", text), name
        assert "html.escape(" not in text, f"{name}: use escape.html, the one HTML helper"
