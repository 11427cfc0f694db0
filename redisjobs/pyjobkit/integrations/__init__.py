"""Web integrations of the Pyjobkit face: a FastAPI router (``[fastapi]`` extra)."""
