"""The web app: the reveal game, the naming studio and the admin pages (FastAPI)."""
