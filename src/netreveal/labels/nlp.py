"""Text side of the label pipeline: clean free-text labels, cluster a cluster map's labels by
meaning, and pick the word that best represents a cluster of labels.

Cleaning is offline: lemmas come from the lexicon shipped inside the ``lemminflect`` package and
the stop words are listed here. Embeddings come from :class:`netreveal.labels.embed.Embedder`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch

from netreveal.errors import NetrevealError
from netreveal.labels.embed import Embedder, EmbeddingCache, MemoryCache, default_model_path

__all__ = [
    "STOP_WORDS",
    "Embedder",
    "EmbeddingCache",
    "MemoryCache",
    "candidate_words",
    "clean_label",
    "cluster_labels",
    "damerau_levenshtein",
    "default_model_path",
    "in_lexicon",
    "lemma",
    "representative_word",
    "spelling_corrections",
    "tokenize",
]

# English function words, plus the filler people type around a label ("looks like a ...").
STOP_WORDS: frozenset[str] = frozenset(
    [
        "a", "about", "above", "across", "after", "again", "against", "all", "almost", "along", "also", "although",
        "always", "am", "among", "an", "and", "another", "any", "anybody", "anyone", "anything", "are", "around",
        "as", "at", "away", "be", "because", "been", "before", "behind", "being", "below", "beneath", "beside",
        "besides", "between", "beyond", "both", "but", "by", "can", "cannot", "could", "did", "do", "does", "doing",
        "done", "down", "during", "each", "either", "else", "enough", "etc", "even", "ever", "every", "few", "for",
        "from", "further", "get", "gets", "got", "had", "has", "have", "having", "he", "her", "here", "hers",
        "herself", "him", "himself", "his", "how", "however", "i", "if", "in", "inside", "instead", "into", "is",
        "it", "its", "itself", "just", "least", "less", "let", "like", "lot", "lots", "many", "may", "maybe", "me",
        "might", "mine", "more", "most", "much", "must", "my", "myself", "near", "neither", "never", "no", "nobody",
        "none", "nor", "not", "nothing", "now", "of", "off", "often", "on", "once", "one", "only", "onto", "or",
        "other", "others", "otherwise", "our", "ours", "ourselves", "out", "outside", "over", "own", "per", "perhaps",
        "please", "probably", "quite", "rather", "really", "same", "several", "shall", "she", "should", "since", "so",
        "some", "somebody", "someone", "something", "somewhat", "still", "such", "than", "that", "the", "their",
        "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "though", "through",
        "throughout", "thus", "to", "together", "too", "toward", "towards", "under", "until", "up", "upon", "us",
        "very", "via", "was", "we", "well", "were", "what", "whatever", "when", "where", "whether", "which", "while",
        "who", "whom", "whose", "why", "will", "with", "within", "without", "would", "yes", "yet", "you", "your",
        "yours", "yourself", "yourselves", "look", "looks", "looked", "looking", "seem", "seems", "seemed", "see",
        "saw", "seen", "think", "guess", "kind", "sort", "sorta", "kinda", "thing", "things", "stuff", "piece", "bit",
        "part", "shape", "object", "picture", "image", "photo", "pic", "appear", "appears",
    ]
)

_POS_ORDER = ("NOUN", "ADJ", "VERB", "ADV", "PROPN", "AUX")
_POSSESSIVE = re.compile(r"(\w)['\u2019]s\b")
_APOSTROPHE = re.compile(r"['\u2019`]")
_NON_WORD = re.compile(r"[^\w]+|_+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens: Unicode NFKC, possessive 's dropped, apostrophes removed, every
    other punctuation mark (and underscore) a word break."""
    if not isinstance(text, str):
        raise NetrevealError(f"a label must be a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _POSSESSIVE.sub(r"\1", text)
    text = _APOSTROPHE.sub("", text)
    return [t for t in _NON_WORD.split(text) if t]


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The dictionary form of one lower-case word (noun reading first, then adjective, verb...);
    unknown words go through lemminflect's noun rules ("zigzags" -> "zigzag")."""
    import lemminflect

    if not word.isalpha():
        return word
    found = lemminflect.getAllLemmas(word)
    for pos in _POS_ORDER:
        if found.get(pos):
            return found[pos][0]
    oov = lemminflect.getAllLemmasOOV(word, "NOUN").get("NOUN")
    return oov[0] if oov else word


def _phrases(class_names: Sequence[str]) -> list[tuple[str, ...]]:
    out = []
    for name in class_names:
        words = tuple(lemma(t) for t in tokenize(str(name)))
        if words:
            out.append(words)
    return sorted(set(out), key=len, reverse=True)  # longest phrase removed first


def _drop_phrases(words: list[str], phrases: list[tuple[str, ...]]) -> list[str]:
    for phrase in phrases:
        n, kept, i = len(phrase), [], 0
        while i < len(words):
            if tuple(words[i : i + n]) == phrase:
                i += n
            else:
                kept.append(words[i])
                i += 1
        words = kept
    return words


def clean_label(
    text: str, class_names: Sequence[str] = (), spelling: Mapping[str, str] | None = None
) -> str:
    """A label reduced to its content words: lower case, punctuation removed, misspellings
    replaced (``spelling``: word -> correction, see :func:`spelling_corrections`), each word
    lemmatised, the class names (whole phrases, any inflection), stop words and bare numbers
    dropped, words joined by one space. English only. May be empty ("It's a cart!" with class
    "cart" -> "")."""
    tokens = tokenize(text)
    if spelling:
        tokens = [spelling.get(t, t) for t in tokens]
    lemmas = [lemma(t) for t in tokens]
    lemmas = _drop_phrases(lemmas, _phrases(class_names)) if class_names else lemmas
    return " ".join(w for w in lemmas if w not in STOP_WORDS and not w.isdigit())


# ---------------------------------------------------------------- spelling


@lru_cache(maxsize=65536)
def in_lexicon(word: str) -> bool:
    """True when ``word`` is in lemminflect's English lexicon."""
    import lemminflect

    return bool(lemminflect.getAllLemmas(word))


def damerau_levenshtein(a: str, b: str) -> int:
    """Edit distance with insertions, deletions, substitutions and adjacent transpositions."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def _deletes(word: str, depth: int) -> set[str]:
    out, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def spelling_corrections(
    texts: Iterable[str], ratio: float = 3.0, min_count: int = 3, max_distance: int = 2
) -> dict[str, str]:
    """Corrections for the misspelt words of a set of labels (e.g. all labels of a study).

    Words in the English lexicon are never changed. Any other word is replaced by the most
    frequent candidate within edit distance 1 (words of up to four letters) or ``max_distance``
    (longer words) when that candidate is at least ``ratio`` times as frequent. Candidates are
    lexicon words and words seen at least ``min_count`` times in ``texts``.
    """
    counts = Counter(t for text in texts for t in tokenize(text) if t.isalpha())
    lexicon = {w for w in counts if in_lexicon(w)}
    trusted = lexicon | {w for w, c in counts.items() if c >= min_count}
    index: dict[str, set[str]] = {}
    for word in trusted:
        for variant in _deletes(word, max_distance):
            index.setdefault(variant, set()).add(word)
    out = {}
    for word, count in counts.items():
        if word in lexicon:
            continue
        limit = 1 if len(word) <= 4 else max_distance
        found = {v for d in _deletes(word, limit) for v in index.get(d, ()) if v != word}
        scored = [(damerau_levenshtein(word, v), v) for v in found if counts[v] >= ratio * count]
        scored = [(d, v) for d, v in scored if d <= limit]
        if scored:
            out[word] = min(scored, key=lambda dv: (-counts[dv[1]], dv[0], dv[1]))[1]
    return out


# ---------------------------------------------------------------- clustering


def _as_matrix(embeddings) -> np.ndarray:
    """(n, dim) float64 numpy copy (label sets are small: numpy beats torch's threading here)."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise NetrevealError(f"embeddings must be a (n, dim) matrix, got shape {x.shape}")
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _first_seen_order(labels: np.ndarray) -> list[int]:
    mapping: dict[int, int] = {}
    return [mapping.setdefault(int(v), len(mapping)) for v in labels]


def cluster_labels(embeddings, max_k: int = 8, merge_distance: float = 0.5) -> list[int]:
    """Cluster label embeddings (n, dim): agglomerative, cosine distance, complete linkage, the
    number of clusters by best silhouette over k = 2..min(max_k, distinct points, n - 1).

    When every pair of labels is within ``merge_distance`` (cosine distance; identical labels
    are at 0) the labels form one cluster; two different labels further apart form two.
    Clusters are numbered by first appearance (the first label is in cluster 0).
    """
    from scipy.cluster.hierarchy import cut_tree, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics.pairwise import cosine_distances

    from netreveal.inv.cluster import mean_silhouettes

    x = _as_matrix(embeddings)
    n = x.shape[0]
    if n <= 1:
        return [0] * n
    d = cosine_distances(x)  # in [0, 2]; a zero vector is at distance 1 from everything else
    if float(d.max()) <= merge_distance:
        return [0] * n
    tree = linkage(squareform(d, checks=False), method="complete")
    distinct = len(np.unique(np.round(d, 9), axis=0))
    ks = list(range(2, min(max_k, distinct, n - 1) + 1)) or [2]  # [2]: two far apart
    cuts = cut_tree(tree, n_clusters=ks).T
    best = cuts[0]
    if len(ks) > 1:
        # every k in one batched pass (the library's per-call checks cost 6x more here)
        scores = mean_silhouettes(d[None], cuts[None])[0]
        # the fewest clusters among (numerically) equal best scores
        best = cuts[int(np.flatnonzero(scores >= scores.max() - 1e-12)[0])]
    return _first_seen_order(best)


# ---------------------------------------------------------------- representative word


def candidate_words(labels: Sequence[str]) -> dict[str, Counter]:
    """Non-stop-words of ``labels`` grouped by lemma: lemma -> counts of its surface forms."""
    groups: dict[str, Counter] = {}
    for text in labels:
        for token in tokenize(text):
            root = lemma(token)
            if token in STOP_WORDS or root in STOP_WORDS or token.isdigit():
                continue
            groups.setdefault(root, Counter())[token] += 1
    return groups


def representative_word(
    labels: Sequence[str],
    embed: Callable[[Sequence[str]], torch.Tensor],
    embeddings: torch.Tensor | None = None,
) -> str:
    """The word that best stands for a cluster of labels (duplicates count).

    Candidates are the labels' non-stop-words, words sharing a lemma merged into one candidate
    (shown as the lemma). Each candidate scores the summed cosine similarity between its
    embedding and every label's embedding; the best scoring lemma wins (ties: the more frequent,
    then alphabetical). ``embed`` maps texts to (n, dim) vectors (an :class:`Embedder`);
    ``embeddings`` are the labels' vectors if already computed. "" when no candidate is left.
    """
    labels = list(labels)
    groups = candidate_words(labels)
    if not groups:
        return ""
    lemmas = sorted(groups)
    if embeddings is None:
        embeddings = embed(labels)
    label_vecs = _as_matrix(embeddings)
    if label_vecs.shape[0] != len(labels):
        raise NetrevealError(f"got {label_vecs.shape[0]} embeddings for {len(labels)} labels")
    # a merged candidate scores as the best of its lemma and its surface forms
    forms = sorted({w for root in lemmas for w in (root, *groups[root])})
    form_vecs = _as_matrix(embed(forms))
    sims = (_unit(form_vecs) @ _unit(label_vecs).T).sum(axis=1)
    score = dict(zip(forms, sims.tolist()))
    ranked = sorted(
        lemmas,
        key=lambda r: (
            -max(score[w] for w in (r, *groups[r])),
            -sum(groups[r].values()),
            r,
        ),
    )
    return ranked[0]
