"""The server wing: the services container, the Litestar app and its routes, startup,
uvicorn, backups."""
