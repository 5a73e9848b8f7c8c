# Textual imports its widgets lazily (textual.widgets.__getattr__) and reads .tcss and
# other data from its package: collect every submodule and every data file.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

hiddenimports = collect_submodules("textual", filter=lambda name: ".tests" not in name)
datas = collect_data_files("textual") + copy_metadata("textual")
