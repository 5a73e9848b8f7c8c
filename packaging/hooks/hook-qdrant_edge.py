# Qdrant Edge: a Rust extension module (qdrant_edge*.so) and its Python shim.
from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs, collect_submodules

hiddenimports = collect_submodules("qdrant_edge")
binaries = collect_dynamic_libs("qdrant_edge")
datas = collect_data_files("qdrant_edge")
