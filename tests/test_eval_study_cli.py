# ruff: noqa: F811  (pytest fixtures imported from dbs are redefined as test arguments)
"""``netreveal study create --kind evaluation`` and ``netreveal study analyse``: the happy path on the
demo model, and bad input as exit code 2 with one line on stderr and nothing stored."""

import json

import pytest
from cli_checks import fails_with_one_line
from dbs import make_tiny_study, row_counts, store, store_url  # noqa: F401  (fixtures)
from evalstudy import answer_as_simulated
from sqlalchemy import func, select

from netreveal.cli import main
from netreveal.store import open_store
from netreveal.store.evaluation import load_design, study_seed
from netreveal.store.models import EvalQuestion, Study
from netreveal.userstudy import analyse, simulate_study


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from netreveal.data.partsworld import PartsWorld

    folder = tmp_path_factory.mktemp("pw")
    PartsWorld(size=64, seed=0, split="test").write_folder(folder, 1)
    return folder


def test_create_answer_analyse_export(store_url, image_folder, tmp_path, capsys):
    db = ["--database-url", store_url]
    create = ["study", "create", "--kind", "evaluation", "--name", "ev", "--images", str(image_folder), "--limit", "6",
              "--methods", "gradcam,inv", "--forward", "2", "--seed", "5", "--attention-every", "3", "--layers",
              "last:3", "--quiet", *db]
    assert main(create) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("created evaluation study 'ev' (id ") and "6 images" in out
    assert "9 questions (4 rating, 2 forward, 2 attention, 1 comment); methods gradcam, inv" in out
    assert main(["study", "list", *db]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:4] == ["ev", "evaluation", "6"]
    fails_with_one_line(capsys, ["study", "analyse", "--name", "ev", "--out", str(tmp_path / "none"), *db],
                        "no responses")
    assert not (tmp_path / "none").exists()

    opened = open_store(store_url)
    try:
        with opened.session() as s:
            study = s.scalars(select(Study).where(Study.name == "ev")).one()
            design, seed = load_design(s, study), study_seed(study)
        assert seed == 5
        simulated = simulate_study(design, 8, seed=seed, informativeness={"gradcam": 4.2, "inv": 2.4},
                                   expert_share=0.5)
        answer_as_simulated(opened, "ev", simulated)
    finally:
        opened.close()
    report = tmp_path / "report"
    assert main(["study", "analyse", "--name", "ev", "--out", str(report), *db]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("analysed 8 participants (0 excluded by attention checks)")
    assert lines[-1] == str((report / "index.html").resolve())
    data = json.loads((report / "analysis.json").read_text())
    expected = analyse(simulated.responses, simulated.participants, questions=design, methods=["gradcam", "inv"])
    assert [(s["method"], s["scale"], s["n"]) for s in data["scores"]] == [
        (s.method, s.scale, s.n) for s in expected.scores]
    assert [s["mean"] for s in data["scores"]] == pytest.approx([s.mean for s in expected.scores])
    assert [p["p_holm"] for p in data["pairs"]] == pytest.approx([p.p_holm for p in expected.pairs])
    assert data["participants"] == [f"p{i:03d}" for i in range(8)]
    csv_rows = (report / "responses.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(simulated.responses)
    assert "novices" in (report / "index.html").read_text().lower()

    assert main(["study", "export", "--name", "ev", "--out", str(tmp_path / "export"), *db]) == 0
    doc = json.loads((tmp_path / "export" / "study.json").read_text())
    assert len(doc["eval_responses"]) == len(simulated.responses)
    assert doc["study"]["kind"] == "evaluation" and doc["study"]["params"]["seed"] == 5


def test_bad_input_is_one_line_and_stores_nothing(store_url, image_folder, tmp_path, capsys):
    db = ["--database-url", store_url]
    opened = open_store(store_url)
    make_tiny_study(opened, name="reveal")
    opened.close()
    before = row_counts(store_url)
    def create(*extra, name="ev", images=image_folder):
        return ["study", "create", "--kind", "evaluation", "--name", name, "--images", str(images), "--quiet", *db,
                *extra]

    fails_with_one_line(capsys, create(), "needs --methods")
    fails_with_one_line(capsys, create("--methods", "gradcam,sag"), "gives no heatmap")
    fails_with_one_line(capsys, create("--methods", "gradcam,nope"), "unknown method 'nope'")
    fails_with_one_line(capsys, create("--methods", "gradcam,gradcam"), "twice")
    fails_with_one_line(capsys, create("--methods", "gradcam", "--options", "1"), "--options")
    fails_with_one_line(capsys, create("--methods", "gradcam", "--limit", "1"), "--limit")
    fails_with_one_line(capsys, create("--methods", "gradcam", "--limit", "3", "--forward", "3"), "--forward")
    fails_with_one_line(capsys, create("--methods", "gradcam", images=tmp_path / "missing"), "missing")
    fails_with_one_line(capsys, create("--methods", "gradcam", name="bad name!"), "bad study name")
    fails_with_one_line(capsys, create("--methods", "gradcam", name="reveal"), "already exists")
    fails_with_one_line(capsys, ["study", "create", "--name", "r2", "--images", str(image_folder),
                                 "--methods", "gradcam", *db], "--kind evaluation")
    fails_with_one_line(capsys, ["study", "analyse", "--name", "nope", "--out", str(tmp_path / "a"), *db],
                        "unknown study 'nope'")
    fails_with_one_line(capsys, ["study", "analyse", "--name", "reveal", "--out", str(tmp_path / "a"), *db],
                        "not an evaluation study")
    fails_with_one_line(capsys, ["study", "analyse", "--name", "reveal", "--out", str(tmp_path / "a"),
                                 "--alpha", "2", *db], "--alpha")
    assert row_counts(store_url) == before
    assert not (tmp_path / "a").exists()
    opened = open_store(store_url)
    with opened.session() as s:
        assert s.scalar(select(func.count()).select_from(EvalQuestion)) == 0
    opened.close()
