"""The explanation browser: what the served study's labels say about the model.

Pages (annotators and admins): ``/explanations`` — per class and layer the top labels (bars) and
how labels rise or fall with depth; ``/explanations/images/{image_id}`` — one image's cluster maps
per layer with their best labels and weights (maps sharing a best label merged).

Both come from :func:`netreveal.labels.analysis.analyse_study` on the current labels (no
pictures, agreement or TCAV), kept in memory per app until the study's number of labels changes,
so pages are fast between new labels. A new label is analysed quickly too: label embeddings are
kept in memory as well as in the store, and the cluster maps whose labels did not change are not
scored again. :func:`warm_up` (``netreveal serve`` calls it) prepares all of it in the background
when the server starts, so the first visitor does not wait for the imports, the embedding model and
the first analysis. The sentence-embedding model is ``app.state.label_embedding_model`` when set (a
model name or path, an object with ``encode``, or an :class:`~netreveal.labels.embed.Embedder`),
else the default offline model.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from netreveal.errors import NetrevealError
from netreveal.store.models import Account, Study
from netreveal.web.deps import naming_study, render, require_role, study
from netreveal.web.params import DbId

if TYPE_CHECKING:
    from netreveal.labels.analysis import StudyAnalysis

annotator = require_role("annotator")
router = APIRouter(prefix="/explanations", tags=["explanations"],
                   dependencies=[Depends(naming_study), Depends(annotator)])
_SETUP = threading.Lock()


@dataclass
class _Cache:
    """The analysis of one study at one label count (or the message saying why there is none),
    the embedder and the per-item memo that make the next analysis quick."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    key: tuple[int, int] | None = None
    analysis: Any = None
    message: str | None = None
    embedder: Any = None
    memo: dict = field(default_factory=dict)


def _cache(app: FastAPI) -> _Cache:
    state = app.state
    with _SETUP:
        if not hasattr(state, "explanations_cache"):
            state.explanations_cache = _Cache()
        return state.explanations_cache


def _embedder(app: FastAPI, cache: _Cache):
    from netreveal.labels.embed import Embedder
    from netreveal.studies.embedding_cache import StoreEmbeddingCache

    if cache.embedder is None:
        chosen = getattr(app.state, "label_embedding_model", None)
        if isinstance(chosen, Embedder):
            cache.embedder = chosen
        else:
            cache.embedder = Embedder(chosen, cache=StoreEmbeddingCache(app.state.store, remember=True))
    return cache.embedder


def _analysis(app: FastAPI, study_id: int, study_name: str) -> tuple[StudyAnalysis | None, str | None]:
    """The analysis of the study's current labels, from the cache or computed now (one computation
    at a time; the others wait for its result)."""
    from netreveal.labels.analysis import analyse_study, study_guess_count

    store = app.state.store
    cache = _cache(app)
    key = (study_id, study_guess_count(store, study_id))
    with cache.lock:
        if cache.key != key:
            try:
                cache.analysis = analyse_study(store, study_name, model=_embedder(app, cache), pictures=False,
                                               agreement=False, memo=cache.memo)
                cache.message = None
            except NetrevealError as exc:
                cache.analysis, cache.message = None, str(exc)
            cache.key = key
        return cache.analysis, cache.message


def current_analysis(request: Request, current: Study) -> tuple[StudyAnalysis | None, str | None]:
    """``(analysis, None)`` for the study's current labels, or ``(None, message)`` when there is
    nothing to show (no labels yet). Recomputed only when the number of labels changed."""
    return _analysis(request.app, current.id, current.name)


def warm_up(app: FastAPI) -> threading.Thread | None:
    """Analyse the served study's labels in a background thread (imports, embedding model, first
    analysis), so the first visit of ``/explanations`` finds them ready; returns the thread (None
    when there is nothing to prepare: an evaluation study, or no label yet)."""
    from netreveal.store.label_queries import label_count

    with app.state.store.session() as session:
        served = session.get(Study, app.state.study_id)
        if served is None or served.kind != "reveal":
            return None
    if label_count(app.state.store, app.state.study_id) == 0:
        return None

    def run() -> None:
        try:
            _analysis(app, app.state.study_id, app.state.study_name)
        except Exception as exc:  # a failed warm-up only means the first visit computes it
            logging.getLogger(__name__).warning("explanation pages not prepared: %s", exc)

    thread = threading.Thread(target=run, name="explanations-warm-up", daemon=True)
    thread.start()
    return thread


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def global_page(request: Request, who: Account = Depends(annotator), current: Study = Depends(study)) -> HTMLResponse:
    """Per class and layer the top labels, trends across depth, and the images to open."""
    from netreveal.labels.report import class_trends, global_charts

    analysis, message = current_analysis(request, current)
    context: dict[str, Any] = {"analysis": analysis, "message": message}
    if analysis is not None:
        labelled = {e.image for e in analysis.explanations.local}
        counts: dict[str, int] = {}
        for item in analysis.explanations.items:
            counts[item.image] = counts.get(item.image, 0) + item.n_labels
        context.update(charts=global_charts(analysis), trends=class_trends(analysis), counts=counts,
                       labelled=labelled, ids={i.key: i.id for i in analysis.images})
    return render(request, "explanations.html", context)


@router.get("/images/{image_id}", response_class=HTMLResponse, include_in_schema=False)
def image_page(image_id: DbId, request: Request, who: Account = Depends(annotator),
               current: Study = Depends(study)) -> HTMLResponse:
    """One image: per layer its cluster maps with their best labels and weights."""
    analysis, message = current_analysis(request, current)
    if analysis is None:
        return render(request, "explanations_image.html", {"analysis": None, "message": message})
    index = next((k for k, i in enumerate(analysis.images) if i.id == image_id), None)
    if index is None:
        raise HTTPException(status_code=404, detail="no such image in this study")
    info = analysis.images[index]
    local = next((e for e in analysis.explanations.local if e.image == info.key), None)
    by_layer = {layer.layer: layer.entries for layer in (local.layers if local else [])}
    shown: set[str] = {i for entries in by_layer.values() for e in entries for i in e.item_ids}
    layers = []
    for name in analysis.layers:
        entries = [
            {"maps": [analysis.items[i] for i in e.item_ids], "clusters": e.clusters, "weight": e.weight,
             "labels": e.labels}
            for e in by_layer.get(name, [])
        ]
        bare = sorted((it for key, it in analysis.items.items()
                       if it.image_id == info.id and it.layer == name and key not in shown),
                      key=lambda it: it.cluster)
        entries += [{"maps": [it], "clusters": [it.cluster], "weight": it.weight, "labels": []} for it in bare]
        if entries:
            layers.append({"name": name, "entries": entries})
    neighbours = {
        "prev": analysis.images[index - 1].id if index > 0 else None,
        "next": analysis.images[index + 1].id if index + 1 < len(analysis.images) else None,
    }
    return render(request, "explanations_image.html",
                  {"analysis": analysis, "message": None, "info": info, "layers": layers, "nav": neighbours,
                   "position": index + 1})

