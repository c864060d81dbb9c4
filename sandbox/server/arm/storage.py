"""Microsoft.Storage (placeholder: being written)."""


def register(router, ctx) -> None:
    pass


def on_scope_deleted(ctx, scope: str) -> None:
    pass


def accounts(ctx) -> dict:
    return {}
