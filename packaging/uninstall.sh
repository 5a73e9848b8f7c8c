#!/bin/sh
# Remove the RAG appliance. Keeps the data (documents, index, keys) and the config unless
# --purge is given. Run as root. Paths and their overrides: layout.sh.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/layout.sh"
purge=0
[ "${1:-}" = "--purge" ] && purge=1
[ "$(id -u)" = 0 ] || { echo "uninstall: run as root" >&2; exit 1; }

if [ "${NO_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now appliance.service >/dev/null 2>&1 || true
fi
rm -f "$UNIT_DIR/appliance.service"
[ -L "$BIN_LINK" ] && rm -f "$BIN_LINK"
rm -rf "$PREFIX"
if [ "$purge" = 1 ]; then
  # also the previous data kept by `appliance restore` and any restore left half-done
  data_parent=$(dirname "$DATA_DIR")
  data_name=$(basename "$DATA_DIR")
  rm -rf "$DATA_DIR" "$ETC_DIR" "$DATA_DIR".before-restore-* "$data_parent/.$data_name".restoring-*
  userdel "$SERVICE_USER" >/dev/null 2>&1 || true
  echo "uninstall: removed the program, its data ($DATA_DIR and its before-restore copies), config ($ETC_DIR) and user"
else
  echo "uninstall: removed the program; kept $DATA_DIR and $ETC_DIR (--purge removes them)"
fi
