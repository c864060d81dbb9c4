"""Static website endpoint (placeholder: being written)."""
from .http import Router


def make_router(ctx) -> Router:
    return Router("web")
