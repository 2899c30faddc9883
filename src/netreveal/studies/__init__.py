"""The study services: create a reveal study from INV, create evaluation studies, export studies,
import labels, and cache label embeddings; they persist through :mod:`netreveal.store`.

Modules are imported on use (``from netreveal.studies.inv_study import create_study``), so
importing this package loads neither torch nor the store.
"""
