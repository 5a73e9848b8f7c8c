# The admin console: every screen module (imported by name) and the .tcss beside them.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules

hiddenimports = collect_submodules("tui")
datas = collect_data_files("tui", includes=["**/*.tcss"])
