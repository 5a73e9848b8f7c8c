# extract-msg: the data files it reads (property tables) and its lazily imported modules.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

datas = collect_data_files("extract_msg") + copy_metadata("extract_msg")
hiddenimports = collect_submodules("extract_msg")
