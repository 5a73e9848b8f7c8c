# The appliance imports most of itself lazily (the CLI's commands, the store adapters,
# the parser worker): collect every module of the package.
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("appliance")

# The OCR stack is imported by name (importlib) inside ingest/formats/ocr.py.
hiddenimports += ["rapidocr_onnxruntime", "onnxruntime", "cv2", "pypdfium2", "pypdfium2_raw"]
