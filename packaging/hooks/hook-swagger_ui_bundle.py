# Swagger UI's JavaScript and CSS, served at /docs from the package's vendor directory.
from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("swagger_ui_bundle")
