"""The naming studio: annotators group the study's significant maps into named visual concepts.

Pages: ``/studio`` (the gallery and the annotator's concepts) and ``/studio/summary`` (the concepts
behind each predicted class). JSON API under ``/studio/api``. Every route needs the annotator role
(admins pass too); every state-changing route checks the CSRF token. The work is done by
:mod:`netreveal.store.concepts` inside the request's transaction.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netreveal.store import concepts
from netreveal.store.concept_views import (
    ClassSummary,
    ConceptEventView,
    ConceptView,
    GalleryPage,
    ImageExplanation,
)
from netreveal.store.models import Account, Study
from netreveal.studies import concept_summary
from netreveal.web.deps import check_csrf, db, naming_study, render, require_role, study
from netreveal.web.params import DB_ID_MAX, DbId

annotator = require_role("annotator")
router = APIRouter(prefix="/studio", tags=["studio"], dependencies=[Depends(naming_study), Depends(annotator)])
NAME_INPUT_MAX = 400  # longer bodies are refused before the name check gives its clearer message
Scope = Literal["mine", "all"]


class ItemsBody(BaseModel):
    items: list[DbId] = Field(max_length=concepts.SELECTION_MAX)
    move: bool = False


class CreateBody(ItemsBody):
    name: str = Field(max_length=NAME_INPUT_MAX)


class RenameBody(BaseModel):
    name: str = Field(max_length=NAME_INPUT_MAX)


class MergeBody(BaseModel):
    concepts: list[DbId] = Field(max_length=1000)
    name: str | None = Field(default=None, max_length=NAME_INPUT_MAX)


class SplitBody(BaseModel):
    items: list[DbId] = Field(max_length=concepts.SELECTION_MAX)
    name: str = Field(max_length=NAME_INPUT_MAX)


def _run(session: Session, operation, *args, **kwargs) -> Any:
    """Run a concept operation; its errors become HTTP errors (and the transaction is rolled back)."""
    try:
        result = operation(session, *args, **kwargs)
        session.flush()
        return result
    except concepts.ConceptError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from exc
    except IntegrityError as exc:  # two changes to the same maps at once
        raise HTTPException(
            status_code=409, detail="your concepts changed at the same time elsewhere; reload and try again"
        ) from exc


def _scope_annotator(who: Account, scope: Scope) -> Account | None:
    if scope == "all":
        if who.role != "admin":
            raise HTTPException(status_code=403, detail="only admins see the concepts of all annotators")
        return None
    return who


# ------------------------------------------------------------------------------------------ pages


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def studio_page(request: Request, who: Account = Depends(annotator), current: Study = Depends(study)) -> HTMLResponse:
    """The gallery of maps and the annotator's concepts (filled in by studio.js)."""
    return render(request, "studio.html")


@router.get("/summary", response_class=HTMLResponse, include_in_schema=False)
def summary_page(request: Request, scope: Scope = "mine", session: Session = Depends(db),
                 who: Account = Depends(annotator), current: Study = Depends(study)) -> HTMLResponse:
    """Per predicted class, the named concepts behind the predictions."""
    summaries = _run(session, concept_summary.class_summary, current, _scope_annotator(who, scope))
    return render(request, "studio_summary.html",
                  {"summaries": summaries, "scope": scope, "is_admin": who.role == "admin"})


# ------------------------------------------------------------------------------------- gallery API


@router.get("/api/filters")
def api_filters(session: Session = Depends(db), current: Study = Depends(study)) -> dict:
    """Layers and predicted classes with their map counts."""
    return _run(session, concepts.gallery_filters, current)


@router.get("/api/gallery", response_model=None)
def api_gallery(
    layer: str | None = Query(None, max_length=200),
    cls: str | None = Query(None, max_length=80, alias="class"),
    image: DbId | None = None,
    unassigned: bool = False,
    min_weight: float = Query(0.0, ge=0),
    page: int = Query(1, ge=1, le=DB_ID_MAX),
    per_page: int = Query(concepts.PER_PAGE_DEFAULT, ge=1, le=concepts.PER_PAGE_MAX),
    session: Session = Depends(db),
    who: Account = Depends(annotator),
    current: Study = Depends(study),
) -> GalleryPage:
    """One page of significant maps, strongest first, with the annotator's concept for each."""
    return _run(session, concepts.gallery, current, who, layer=layer, predicted_class=cls, image=image,
                unassigned_only=unassigned, min_weight=min_weight, page=page, per_page=per_page)


@router.get("/api/images/{image_id}/explanation", response_model=None)
def api_explanation(image_id: DbId, scope: Scope = "mine", top: int = Query(5, ge=1, le=50),
                    session: Session = Depends(db), who: Account = Depends(annotator),
                    current: Study = Depends(study)) -> ImageExplanation:
    """An image's classification as a few named concepts with weights."""
    return _run(session, concept_summary.explain_image, current, image_id, _scope_annotator(who, scope), top=top)


@router.get("/api/summary", response_model=None)
def api_summary(scope: Scope = "mine", examples: int = Query(4, ge=0, le=20), session: Session = Depends(db),
                who: Account = Depends(annotator), current: Study = Depends(study)) -> list[ClassSummary]:
    """Per predicted class, the named concepts behind the predictions (mine, or all annotators' for admins)."""
    return _run(session, concept_summary.class_summary, current, _scope_annotator(who, scope), examples=examples)


# ------------------------------------------------------------------------------------ concepts API


@router.get("/api/concepts", response_model=None)
def api_concepts(session: Session = Depends(db), who: Account = Depends(annotator),
                 current: Study = Depends(study)) -> list[ConceptView]:
    """My concepts, most recently changed first."""
    return _run(session, concepts.list_concepts, current, who)


@router.post("/api/concepts", status_code=201, dependencies=[Depends(check_csrf)], response_model=None)
def api_create(body: CreateBody, session: Session = Depends(db), who: Account = Depends(annotator),
               current: Study = Depends(study)) -> ConceptView:
    """A new concept from the selected maps (``move``: take maps out of my other concepts)."""
    return _run(session, concepts.create_concept, current, who, body.name, body.items, move=body.move)


@router.post("/api/concepts/merge", dependencies=[Depends(check_csrf)], response_model=None)
def api_merge(body: MergeBody, session: Session = Depends(db), who: Account = Depends(annotator),
              current: Study = Depends(study)) -> ConceptView:
    """Merge two or more of my concepts into the first one given."""
    return _run(session, concepts.merge_concepts, current, who, body.concepts, body.name)


@router.get("/api/concepts/{concept_id}", response_model=None)
def api_concept(concept_id: DbId, session: Session = Depends(db), who: Account = Depends(annotator),
                current: Study = Depends(study)) -> ConceptView:
    """One of my concepts with its maps."""
    return _run(session, concepts.get_concept, current, who, concept_id)


@router.get("/api/concepts/{concept_id}/history", response_model=None)
def api_history(concept_id: DbId, session: Session = Depends(db), who: Account = Depends(annotator),
                current: Study = Depends(study)) -> list[ConceptEventView]:
    """The changes made to one of my concepts, oldest first."""
    return _run(session, concepts.concept_history, current, who, concept_id)


@router.patch("/api/concepts/{concept_id}", dependencies=[Depends(check_csrf)], response_model=None)
def api_rename(concept_id: DbId, body: RenameBody, session: Session = Depends(db),
               who: Account = Depends(annotator), current: Study = Depends(study)) -> ConceptView:
    """Rename one of my concepts."""
    return _run(session, concepts.rename_concept, current, who, concept_id, body.name)


@router.delete("/api/concepts/{concept_id}", dependencies=[Depends(check_csrf)], response_model=None)
def api_remove(concept_id: DbId, session: Session = Depends(db), who: Account = Depends(annotator),
               current: Study = Depends(study)) -> ConceptView:
    """Remove one of my concepts; its maps become free (the concept's history is kept)."""
    return _run(session, concepts.remove_concept, current, who, concept_id)


@router.post("/api/concepts/{concept_id}/items", dependencies=[Depends(check_csrf)], response_model=None)
def api_add(concept_id: DbId, body: ItemsBody, session: Session = Depends(db),
            who: Account = Depends(annotator), current: Study = Depends(study)) -> ConceptView:
    """Add maps to one of my concepts (``move``: take them out of my other concepts)."""
    return _run(session, concepts.add_items, current, who, concept_id, body.items, move=body.move)


@router.post("/api/concepts/{concept_id}/items/drop", dependencies=[Depends(check_csrf)], response_model=None)
def api_drop(concept_id: DbId, body: ItemsBody, session: Session = Depends(db),
             who: Account = Depends(annotator), current: Study = Depends(study)) -> ConceptView:
    """Take maps out of one of my concepts."""
    return _run(session, concepts.remove_items, current, who, concept_id, body.items)


@router.post("/api/concepts/{concept_id}/split", status_code=201, dependencies=[Depends(check_csrf)],
             response_model=None)
def api_split(concept_id: DbId, body: SplitBody, session: Session = Depends(db),
              who: Account = Depends(annotator), current: Study = Depends(study)) -> ConceptView:
    """Move some maps of one of my concepts to a new concept; answers with the new concept."""
    return _run(session, concepts.split_concept, current, who, concept_id, body.items, body.name)
