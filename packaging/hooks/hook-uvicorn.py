# uvicorn picks its loop, HTTP and WebSocket implementations by import string.
from PyInstaller.utils.hooks import collect_submodules, copy_metadata

hiddenimports = [*collect_submodules("uvicorn"), "websockets", "httptools", "uvloop"]
datas = copy_metadata("uvicorn")
