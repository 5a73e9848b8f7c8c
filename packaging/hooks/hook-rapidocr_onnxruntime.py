# RapidOCR: its ONNX models and config.yaml ship inside the package (nothing is
# downloaded at run time); its stages are imported by relative imports.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules

datas = collect_data_files("rapidocr_onnxruntime")
hiddenimports = collect_submodules("rapidocr_onnxruntime")
