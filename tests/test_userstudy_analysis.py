"""User-study statistics against hand-computed values, planted effects, and the HTML report."""

import csv
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from netreveal.errors import NetrevealError
from netreveal.userstudy import (
    Participant,
    Response,
    analyse,
    make_design,
    simulate_study,
    write_analysis_report,
)
from netreveal.userstudy.stats import (
    clip_interval,
    holm,
    rank_sum,
    signed_rank,
    t_interval,
    wilson_interval,
)

T_975_DF4 = 2.7764451051977987  # Student t quantile tables: t(0.975; 4) = 2.776
T_975_DF2 = 4.302652729911275  # t(0.975; 2) = 4.303
Z_975 = 1.959963984540054  # standard normal quantile: z(0.975) = 1.960

ALPHA, BETA, GAMMA = "alpha", "beta & <b>co</b>", "gamma"
# per participant, two ratings (images r1, r2) of each method on informativeness
INFORMATIVENESS = {
    ALPHA: {"p1": (4, 5), "p2": (4, 4), "p3": (5, 5), "p4": (3, 4), "p5": (4, 4)},  # means 4.5 4 5 3.5 4
    BETA: {"p1": (3, 3), "p2": (3, 4), "p3": (2, 2), "p4": (3, 3), "p5": (4, 5)},  # means 3 3.5 2 3 4.5
    GAMMA: {"p1": (1, 1), "p2": (2, 2), "p3": (1, 2), "p4": (2, 3), "p5": (1, 1)},  # means 1 2 1.5 2.5 1
}
# forward simulation: (condition, method, correct) per answer
FORWARD = {
    "p1": [("with", ALPHA, True), ("with", ALPHA, True), ("without", None, True), ("without", None, False)],
    "p2": [("with", ALPHA, True), ("with", BETA, False), ("without", None, False), ("without", None, False)],
    "p3": [("with", BETA, True), ("with", BETA, True), ("without", None, True), ("without", None, True)],
    "p4": [("with", ALPHA, False), ("with", BETA, True), ("without", None, False), ("without", None, True)],
}
BACKGROUND = {"p1": "novice", "p2": "novice", "p3": "expert", "p4": "expert", "p5": "expert", "p6": "novice"}
HOSTILE_COMMENT = "<img src=x onerror=alert(1)> loved it"


def _responses():
    out = []
    for method, per in INFORMATIVENESS.items():
        for pid, values in per.items():
            for image, value in zip(("r1", "r2"), values):
                out.append(Response(pid, image, "rating", image=image, method=method, scale="informativeness",
                                    value=value))
                out.append(Response(pid, image, "rating", image=image, method=method, scale="understandability",
                                    value=3))
    # p1 first gave alpha 1 on r1, then corrected it to 4 (listed above): the last answer counts
    out.insert(0, Response("p1", "r1", "rating", image="r1", method=ALPHA, scale="informativeness", value=1))
    for pid, answers in FORWARD.items():
        for k, (condition, method, correct) in enumerate(answers):
            out.append(Response(pid, f"f{k}", "forward", image=f"f{k}", method=method, condition=condition,
                                choice="cat" if correct else "dog", correct=correct))
    for pid in ("p1", "p2", "p3", "p4", "p5"):
        out.append(Response(pid, "attention-01", "attention", choice="3", correct=True))
    # p6 failed the attention check: its extreme ratings must not count
    out.append(Response("p6", "attention-01", "attention", choice="5", correct=False))
    for method in (ALPHA, BETA, GAMMA):
        out.append(Response("p6", "r1", "rating", image="r1", method=method, scale="informativeness",
                            value=1 if method == ALPHA else 5))
    out.append(Response("p1", "comment", "comment", text=HOSTILE_COMMENT))
    out.append(Response("p6", "comment", "comment", text="excluded text"))
    return out


@pytest.fixture(scope="module")
def tiny():
    people = [Participant(pid, background) for pid, background in BACKGROUND.items()]
    return analyse(_responses(), people, methods=[ALPHA, BETA, GAMMA])


def test_exclusion_and_rating_means(tiny):
    assert tiny.excluded == ["p6"] and tiny.participants == ["p1", "p2", "p3", "p4", "p5"]
    s = tiny.score(ALPHA, "informativeness")
    # per-participant means 4.5 4 5 3.5 4: mean 4.2, deviations .3 -.2 .8 -.7 -.2, sum of squares 1.3
    sd = math.sqrt(1.3 / 4)
    half = T_975_DF4 * sd / math.sqrt(5)
    assert s.n == 5 and s.mean == pytest.approx(4.2) and s.sd == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == pytest.approx((4.2 - half, 4.2 + half))
    assert tiny.score(GAMMA, "informativeness").mean == pytest.approx(1.6)
    u = tiny.score(BETA, "understandability")
    assert (u.mean, u.sd, u.ci_low, u.ci_high) == pytest.approx((3.0, 0.0, 3.0, 3.0))


def test_pairwise_wilcoxon_and_holm(tiny):
    ab = tiny.pair("informativeness", ALPHA, BETA)
    # d = alpha - beta = 1.5 .5 3 .5 -.5; |d| ranks: the three .5 share rank 2, 1.5 -> 4, 3 -> 5
    assert (ab.n_pairs, ab.n, ab.r_plus, ab.r_minus, ab.statistic) == (5, 5, 13.0, 2.0, 2.0)
    assert ab.mean_diff == pytest.approx(1.0) and ab.effect == pytest.approx(11 / 15)
    # tied ranks: all 2^5 sign flips; R- <= 2 for 4 of 32 (none, or one of the rank-2 values): p = 2 * 4/32
    assert ab.p == pytest.approx(0.25) and ab.p_method == "exact permutation"
    assert ab.p == pytest.approx(stats.wilcoxon([4.5, 4, 5, 3.5, 4], [3, 3.5, 2, 3, 4.5]).pvalue)
    ag, bg = tiny.pair("informativeness", ALPHA, GAMMA), tiny.pair("informativeness", BETA, GAMMA)
    assert ag.r_minus == 0 and bg.r_minus == 0 and ag.p == pytest.approx(2 / 32) and bg.p == pytest.approx(2 / 32)
    # Holm over the three pairs: sorted p = 1/16, 1/16, 1/4 -> 3/16, max(3/16, 2/16), max(3/16, 1/4)
    assert (ag.p_holm, bg.p_holm, ab.p_holm) == pytest.approx((3 / 16, 3 / 16, 1 / 4))
    assert not any(t.significant for t in tiny.pairs)
    same = tiny.pair("understandability", ALPHA, BETA)
    assert same.n == 0 and same.p == 1.0 and same.p_holm == 1.0


def test_forward_simulation(tiny):
    rows = {(f.condition, f.method): f for f in tiny.forward}
    without, with_any, with_alpha = rows[("without", None)], rows[("with", None)], rows[("with", ALPHA)]
    assert (without.n_answers, without.n_correct, without.accuracy) == (8, 4, pytest.approx(0.5))
    assert (with_any.n_answers, with_any.n_correct, with_any.accuracy) == (8, 6, pytest.approx(0.75))
    # alpha: p1 1.0, p2 1.0, p4 0.0 -> mean 2/3 (a t interval over three participants, 2/3 ± 1.43, leaves [0, 1])
    assert with_alpha.accuracy == pytest.approx(2 / 3)
    assert with_alpha.pooled == pytest.approx(3 / 4)  # 3 of p1's, p2's and p4's 4 answers
    # the interval is Wilson's for 3 correct of 4: the roots p of (3/4 - p)^2 = z^2 p (1 - p) / 4
    assert 0 < with_alpha.ci_low < 0.75 < with_alpha.ci_high < 1
    for p in (with_alpha.ci_low, with_alpha.ci_high):
        assert (0.75 - p) ** 2 == pytest.approx(Z_975**2 * p * (1 - p) / 4)
    assert (with_alpha.ci_low, with_alpha.ci_high) == pytest.approx((0.3006418, 0.9544127))
    assert (without.ci_low, without.ci_high) == pytest.approx(wilson_interval(4, 8))
    tests = {t.method: t for t in tiny.forward_tests}
    # any method: with 1 .5 1 .5 vs without .5 0 1 .5 -> two differences of .5: R+ = 3, p = 2 * 1/4
    assert tests[None].n_participants == 4 and tests[None].statistic == 0 and tests[None].p == pytest.approx(0.5)
    # alpha vs without over p1 p2 p4: d = .5 1 -.5 -> R+ = 4.5, R- = 1.5; P(R- <= 1.5) = 3/8
    assert tests[ALPHA].p == pytest.approx(0.75) and tests[ALPHA].statistic == 1.5
    assert tests[BETA].p == pytest.approx(1.0)
    assert (tests[ALPHA].p_holm, tests[BETA].p_holm) == pytest.approx((1.0, 1.0))  # Holm: min(1, 2 * .75)


def test_background_comparison(tiny):
    t = next(b for b in tiny.background if b.method == ALPHA and b.scale == "informativeness")
    novices, experts = [4.5, 4.0], [5.0, 3.5, 4.0]  # p6 is excluded
    assert (t.n_novice, t.n_expert) == (2, 3)
    assert t.u == 3.5 and t.effect == pytest.approx(3.5 / 6)  # 4.5 beats 3.5 and 4; 4 beats 3.5, ties 4
    assert t.p == pytest.approx(stats.mannwhitneyu(novices, experts, alternative="two-sided").pvalue)
    family = [b for b in tiny.background if b.scale == "informativeness"]
    assert [b.p_holm for b in family] == pytest.approx(holm([b.p for b in family]))


def test_statistics_helpers_against_references():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    r = signed_rank(x, y)  # no ties: exact null distribution
    assert r.method == "exact" and r.p == pytest.approx(stats.wilcoxon(x, y).pvalue)
    assert r.statistic == pytest.approx(stats.wilcoxon(x, y).statistic)
    a, b = rng.integers(1, 6, 80).astype(float), rng.integers(1, 6, 80).astype(float)
    big = signed_rank(a, b)  # ties and n > 50: normal approximation with tie and continuity corrections
    d = (a - b)[a != b]
    assert big.method == "normal approximation"
    assert big.p == pytest.approx(stats.wilcoxon(d, method="asymptotic", correction=True).pvalue)
    for n in (5, 8, 10):  # ties, small n: scipy enumerates every sign flip too
        a, b = rng.integers(1, 4, n) / 2, rng.integers(1, 4, n) / 2
        assert signed_rank(a, b).p == pytest.approx(stats.wilcoxon(a, b).pvalue)
    d = rng.choice([-1.5, -1, -0.5, 0.5, 1, 2], 18)  # ties, n = 18 > 13: against every sign flip, enumerated
    ranks = stats.rankdata(np.abs(d))
    signs = (np.arange(2**18)[:, None] >> np.arange(18)) & 1
    null, observed = signs @ ranks, ranks[d > 0].sum()
    reference = 2 * min(np.mean(null >= observed), np.mean(null <= observed))
    r = signed_rank(d, np.zeros(18))
    assert r.method == "exact permutation" and r.r_plus == observed and r.p == pytest.approx(reference)
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert math.isnan(holm([0.01, math.nan])[1]) and holm([0.01, math.nan])[0] == pytest.approx(0.01)
    u = rank_sum([1, 2, 3], [4, 5])  # U = 0, exact: 2 of the C(5, 2) = 10 arrangements are as extreme
    assert u.u == 0 and u.p == pytest.approx(0.2)
    mean, sd, low, high = t_interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0) and high - mean == mean - low == pytest.approx(T_975_DF2 / math.sqrt(3))


def test_wilson_interval_against_its_definition():
    for k, n in ((0, 10), (3, 4), (7, 20), (20, 20), (1, 1), (55, 120)):
        low, high = wilson_interval(k, n)
        p_hat = k / n
        # the interval is every p a two-sided score test does not reject: its ends solve
        # (p_hat - p)^2 = z^2 p (1 - p) / n, and p_hat lies inside
        for end in (low, high):
            assert (p_hat - end) ** 2 == pytest.approx(Z_975**2 * end * (1 - end) / n, abs=1e-12)
        assert 0 <= low <= p_hat <= high <= 1
        reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((reference.low, reference.high))
    # no successes: the lower end is 0 and the upper z^2 / (n + z^2) (0.2775 for n = 10)
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z_975**2 / (10 + Z_975**2)))
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    low90, high90 = wilson_interval(3, 4, confidence=0.9)
    assert wilson_interval(3, 4)[0] < low90 < high90 < wilson_interval(3, 4)[1]
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def _ratings(per_participant: dict[str, dict[str, int]]) -> list:
    """One informativeness rating per (method, participant)."""
    return [Response(pid, "r1", "rating", image="r1", method=method, scale="informativeness", value=value)
            for method, per in per_participant.items() for pid, value in per.items()]


def test_rating_intervals_stay_on_the_scale():
    high = {"p1": 5, "p2": 5, "p3": 4}  # mean 14/3, sd sqrt(1/3): t interval 4.67 ± 1.43 reaches 6.10
    low = {"p1": 1, "p2": 1, "p3": 2}  # mean 4/3: reaches -0.10
    a = analyse(_ratings({"top": high, "bottom": low}), methods=["top", "bottom"], exclude=[])
    half = T_975_DF2 * math.sqrt(1 / 3) / math.sqrt(3)
    top, bottom = a.score("top", "informativeness"), a.score("bottom", "informativeness")
    assert top.mean == pytest.approx(14 / 3) and top.half_width == pytest.approx(half)
    assert (top.ci_low, top.ci_high) == pytest.approx((14 / 3 - half, 5.0))  # clipped above only
    assert (bottom.ci_low, bottom.ci_high) == pytest.approx((1.0, 4 / 3 + half))  # clipped below only
    _, _, t_low, t_high = t_interval(list(high.values()))
    assert t_high > 5 and t_high == pytest.approx(14 / 3 + half)  # the t interval itself is unchanged
    assert clip_interval(t_low, t_high, (1, 5)) == pytest.approx((top.ci_low, 5.0))
    nan_low, nan_high = clip_interval(math.nan, math.nan, (1, 5))
    assert math.isnan(nan_low) and math.isnan(nan_high)


def test_methods_with_few_participants_are_flagged(tiny, tmp_path):
    # every method was rated by the five analysed participants (p6, excluded, does not count)
    assert tiny.min_participants == 10
    assert tiny.method_participants == {ALPHA: 5, BETA: 5, GAMMA: 5}
    assert tiny.few_participants() == [(ALPHA, 5), (BETA, 5), (GAMMA, 5)]
    page = _Page()
    page.feed(write_analysis_report(tiny, tmp_path / "few").read_text(encoding="utf-8"))
    text = " ".join(" ".join(page.text).split())
    assert f"Few participants: fewer than 10 for {ALPHA} (5), {BETA} (5), {GAMMA} (5);" in text
    enough = analyse(_responses(), methods=[ALPHA, BETA, GAMMA], min_participants=5)
    assert enough.few_participants() == [] and enough.to_dict()["min_participants"] == 5
    page = _Page()
    page.feed(write_analysis_report(enough, tmp_path / "enough").read_text(encoding="utf-8"))
    assert "Few participants" not in " ".join(page.text)
    # a method nobody saw counts zero participants
    assert analyse(_responses(), methods=[ALPHA, BETA, GAMMA, "delta"]).few_participants()[-1] == ("delta", 0)
    with pytest.raises(NetrevealError, match="min_participants"):
        analyse(_responses(), min_participants=-1)


def test_report_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from test_userstudy_analysis import _responses; "
            "from netreveal.userstudy import analyse, write_analysis_report; "
            f"write_analysis_report(analyse(_responses()), {str(tmp_path / 'r')!r}); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent)
    assert done.stdout.strip() == "False" and (tmp_path / "r" / "index.html").is_file()


def test_to_dict_is_json(tiny):
    data = json.loads(json.dumps(tiny.to_dict(), allow_nan=False))
    assert data["excluded"] == ["p6"] and data["n_responses"] == len(_responses())
    assert data["comments"] == [["p1", HOSTILE_COMMENT]]
    assert {"method comparison", "forward simulation", "rating interval"} <= set(data["procedures"])


CLASSES = ["tench", "springer", "cassette", "chainsaw", "church", "horn"]


def _design(n_images=24):
    images = [f"img{i:02d}" for i in range(n_images)]
    predictions = {k: CLASSES[i % len(CLASSES)] for i, k in enumerate(images)}
    return make_design(images, ["inv", "gradcam", "gradcam_copy"], predictions, CLASSES, seed=11, attention_every=8)


def test_planted_difference_recovered():
    design = _design()
    study = simulate_study(design, 20, seed=0, informativeness={"inv": 4.0, "gradcam": 3.0, "gradcam_copy": 3.0},
                           understandability={"inv": 3.5, "gradcam": 3.5, "gradcam_copy": 3.5},
                           forward_without=0.5, forward_with={"inv": 0.95, "gradcam": 0.5, "gradcam_copy": 0.5},
                           inattentive=0.15)
    a = analyse(study.responses, study.participants, questions=study.design)
    assert a.excluded and len(a.participants) + len(a.excluded) == 20
    for other in ("gradcam", "gradcam_copy"):
        t = a.pair("informativeness", "inv", other)
        assert t.significant and t.p_holm < 0.001 and 0.6 < abs(t.mean_diff) < 1.4
    assert not a.pair("informativeness", "gradcam", "gradcam_copy").significant
    assert not any(t.significant for t in a.pairs if t.scale == "understandability")
    forward = {t.method: t for t in a.forward_tests}
    assert forward["inv"].significant and forward["inv"].mean_diff > 0.25
    assert not forward["gradcam"].significant and not forward["gradcam_copy"].significant


def test_identical_methods_rarely_differ():
    design = _design(16)
    truth = {"inv": 4.0, "gradcam": 3.0, "gradcam_copy": 3.0}
    significant = []
    for seed in range(40):
        study = simulate_study(design, 16, seed=seed, informativeness=truth)
        a = analyse(study.responses, study.participants, questions=study.design)
        significant += [a.pair(scale, "gradcam", "gradcam_copy").significant for scale in a.scales]
        assert all(a.pair(scale, "inv", "gradcam").significant for scale in a.scales)
    assert sum(significant) <= 0.1 * len(significant)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def test_report(tiny, tmp_path):
    out = tmp_path / "study-report"
    index = write_analysis_report(tiny, out, title="Study <script>alert('t')</script>")
    with pytest.raises(NetrevealError, match="pass --force"):
        write_analysis_report(tiny, out, title="again")
    write_analysis_report(tiny, out, title="Study <script>alert('t')</script>", force=True)  # replacing works too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study-report"]  # no staging folder left
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert {"script", "img", "b"}.isdisjoint(page.tags)  # user strings never become markup
    assert "Study <script>alert('t')</script>" in text and BETA in text and HOSTILE_COMMENT in text
    assert "excluded text" not in text
    s = tiny.score(ALPHA, "informativeness")
    assert f"{s.mean:.2f} ± {s.ci_high - s.mean:.2f}" == "4.20 ± 0.71" and "4.20 ± 0.71" in text
    assert "[3.49, 4.91]" in text and "0.250" in text and "0.188" in text and "0.750" in text
    assert "[0.301, 0.954]" in text  # Wilson interval of alpha's pooled forward accuracy, 3 of 4
    assert page.tags.count("svg") == 1 and page.tags.count("rect") >= 6  # 3 methods x 2 scales + legend
    assert "responses.csv" in page.links and "analysis.json" in page.links
    assert "#ratings" in page.links and "--accent: #7a2c8f" in text  # the analysis pages' shared layout
    with open(out / "responses.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(_responses())
    assert {r["participant"] for r in rows if r["excluded"] == "True"} == {"p6"}
    assert json.loads((out / "analysis.json").read_text(encoding="utf-8"))["excluded"] == ["p6"]
