# Where the appliance is installed: sourced by install.sh and uninstall.sh.
# Environment (for tests and unusual layouts): PREFIX (/opt/appliance), ETC_DIR
# (/etc/appliance), DATA_DIR (/var/lib/appliance), UNIT_DIR (/etc/systemd/system),
# BIN_LINK (/usr/local/bin/appliance), SERVICE_USER (appliance), NO_SYSTEMCTL=1 (do not
# call systemctl).
PREFIX="${PREFIX:-/opt/appliance}"
ETC_DIR="${ETC_DIR:-/etc/appliance}"
DATA_DIR="${DATA_DIR:-/var/lib/appliance}"
UNIT_DIR="${UNIT_DIR:-/etc/systemd/system}"
BIN_LINK="${BIN_LINK:-/usr/local/bin/appliance}"
SERVICE_USER="${SERVICE_USER:-appliance}"
