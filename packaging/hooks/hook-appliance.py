# The appliance imports most of itself lazily (the CLI's commands, the store adapters,
# the parser worker): collect every module of the package.
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("appliance")
