"""The demo's lighter method settings: what they are, that the report and --help say so, and the
line with the demo's duration."""

import re

from netreveal.cli import build_parser, main
from netreveal.cli.demo_settings import DEMO_SETTINGS, reduced_settings, settings_note
from netreveal.methods import METHODS
from netreveal.methods.flags import method_values


def _parsed(*argv):
    return build_parser().parse_args(list(argv))


def test_the_demo_runs_lighter_iterations_path_steps_and_search_than_the_library():
    demo = method_values(_parsed("demo"), lists=False)[0]
    explain = method_values(_parsed("explain", "--images", "x", "--out", "y"), lists=False)[0]
    library = METHODS["igos++"].Options()
    assert demo["igos_iterations"] == 3 < library.igos_iterations == explain["igos_iterations"] == 15
    assert demo["igos_steps"] == 5 < library.igos_steps == explain["igos_steps"] == 20
    assert demo["sag_saliency_steps"] == 5 and demo["sag_beam_width"] == 2 and demo["grid"] == 5 < explain["grid"]
    assert explain["sag_saliency_steps"] is None and explain["sag_beam_width"] is None  # the SAG variant's own
    assert {k: demo[k] for k in DEMO_SETTINGS} == DEMO_SETTINGS
    assert _parsed("demo", "--igos-iterations", "15").igos_iterations == 15  # a flag still wins


def test_the_demo_help_gives_both_defaults():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["demo"].format_help().split())
    assert "(default here: 3; library default: 15)" in text
    assert "(default here: 5; library default: 20)" in text


def test_the_note_lists_each_lighter_setting_beside_the_library_default():
    values = method_values(_parsed("demo"), lists=False)[0]
    assert reduced_settings(values, ["igos++", "sag"]) == [
        ("--igos-iterations", 3, 15), ("--igos-steps", 5, 20), ("--grid", 5, 7), ("--sag-saliency-steps", 5, 20),
        ("--sag-beam-width", 2, 3)]
    assert reduced_settings(values, ["gradcam", "inv"]) == []  # those read none of them
    note = settings_note(values, ["igos"])
    assert "--igos-iterations 3 (library default 15), --igos-steps 5 (library default 20)" in note
    assert "sag" not in note
    library = method_values(_parsed("demo", "--igos-iterations", "15", "--igos-steps", "20", "--sag-saliency-steps",
                                    "20", "--sag-beam-width", "3", "--grid", "7"), lists=False)[0]
    assert settings_note(library, ["igos", "igos++", "sag"]) is None
    netreveal_sag = method_values(_parsed("demo", "--sag-variant", "netreveal"), lists=False)[0]
    assert ("--sag-beam-width", 2, 5) in reduced_settings(netreveal_sag, ["sag"])  # that variant's own default


def test_the_demo_runs_at_one_thread_unless_told_and_refuses_zero(capsys):
    assert _parsed("demo").threads == 1 and _parsed("demo", "--threads", "2").threads == 2
    assert main(["demo", "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == "netreveal: error: --threads must be at least 1, got 0"


def test_the_demo_report_shows_its_settings_and_the_demo_prints_its_duration(tmp_path, capsys, monkeypatch):
    import torch

    from netreveal import pipeline

    seen, explain = [], pipeline.explain
    monkeypatch.setattr(pipeline, "explain", lambda *a, **k: seen.append(torch.get_num_threads()) or explain(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--images", "1", "--quiet", "--no-study", "--method", "igos"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"demo finished in \d+ s", printed[-1])
    assert seen == [1] and torch.get_num_threads() == 2  # one thread for the demo's work, then as it was
    torch.set_num_threads(before)
    page = " ".join((out / "index.html").read_text().split())
    assert "Demo settings, lighter than the library defaults" in page
    assert "--igos-iterations 3 (library default 15), --igos-steps 5 (library default 20)." in page
    plain = tmp_path / "plain"
    assert main(["demo", "--out", str(plain), "--images", "1", "--quiet", "--no-study", "--method", "gradcam"]) == 0
    assert "Demo settings" not in (plain / "index.html").read_text()  # Grad-CAM reads none of them
