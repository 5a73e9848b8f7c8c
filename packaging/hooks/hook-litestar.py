# Litestar: plugins and the OpenAPI/SSE/WebSocket machinery load modules by name, and
# its version comes from the installed metadata. Contrib modules whose optional
# dependencies are absent are skipped.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata


def _wanted(name: str) -> bool:
    return not any(
        part in name
        for part in (
            ".contrib.sqlalchemy",
            ".contrib.piccolo",
            ".contrib.mako",
            ".contrib.minijinja",
            ".contrib.jinja",
            ".contrib.pydantic",
            ".contrib.attrs",
            ".contrib.opentelemetry",
            ".plugins.sqlalchemy",
            ".plugins.pydantic",
            ".plugins.attrs",
            ".testing",
            ".cli",
            ".channels.backends.redis",
            ".channels.backends.asyncpg",
            ".channels.backends.psycopg",
            ".stores.redis",
            ".stores.valkey",
            ".plugins.htmx",
            ".contrib.htmx",
            ".plugins.flash",
        )
    )


hiddenimports = collect_submodules("litestar", filter=_wanted, on_error="ignore")
datas = collect_data_files("litestar") + copy_metadata("litestar")
