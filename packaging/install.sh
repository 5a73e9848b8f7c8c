#!/bin/sh
# Install (or upgrade) the RAG appliance from this unpacked tarball. Run as root:
#   sudo ./install.sh            then: systemctl start appliance && appliance tui
# An upgrade keeps /etc/appliance (config), /var/lib/appliance (data, keys) untouched.
# Paths and their environment overrides: layout.sh.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/layout.sh"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo ./install.sh)"
[ "$(uname -m)" = x86_64 ] || die "this bundle is for x86_64; this machine is $(uname -m)"

# glibc first: an older one would fail inside the loader with a cryptic message
need="$(cat "$here/MIN_GLIBC")"
have="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
[ -n "$have" ] || die "cannot tell this system's glibc version (getconf GNU_LIBC_VERSION); the appliance needs glibc $need or newer"
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
  die "this system has glibc $have; the appliance needs glibc $need or newer (Debian 12, Ubuntu 22.04, RHEL 10 or newer)"
fi

# the C++ runtime is the system's (a bundled one would raise the glibc floor)
need_cxx="$(cat "$here/MIN_GLIBCXX")"
libstdcxx="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
[ -n "$libstdcxx" ] || die "libstdc++ is missing: install your distribution's libstdc++6 (GCC 11 or newer; the appliance needs GLIBCXX_$need_cxx)"
grep -qa "GLIBCXX_$need_cxx" "$libstdcxx" \
  || die "$libstdcxx is older than the appliance needs (GLIBCXX_$need_cxx, GCC 11 or newer): upgrade libstdc++6"

# doctor: CPU instruction sets, RAM, disk, models; it names what to change
say "checking this machine (appliance doctor)"
config_for_doctor="$ETC_DIR/appliance.toml"
[ -f "$config_for_doctor" ] || config_for_doctor="$here/appliance.toml"
APPLIANCE__STORAGE__DATA_DIR="$DATA_DIR" "$here/appliance" --config "$config_for_doctor" doctor \
  || die "appliance doctor says this machine cannot run the appliance (see above)"

# the system user and the directories
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER" \
    || die "cannot create the system user $SERVICE_USER"
  say "created system user $SERVICE_USER"
fi
install -d -m 0755 "$ETC_DIR"
install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"

# the program: a fresh copy of this folder (an upgrade replaces it whole). A running
# service is stopped first: it reads its own files while it runs (lazy imports, the
# parser sandbox re-executes the binary), and restarted after.
systemd_here=0
if [ "${NO_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemd_here=1
fi
was_running=0
if [ "$systemd_here" = 1 ] && systemctl is-active --quiet appliance.service; then
  say "stopping the running appliance for the upgrade"
  systemctl stop appliance.service
  was_running=1
fi
if [ -d "$PREFIX" ]; then
  say "upgrading $PREFIX (config in $ETC_DIR and data in $DATA_DIR are kept)"
  rm -rf "$PREFIX.old" && mv "$PREFIX" "$PREFIX.old"
fi
restore_old() {
  if [ -d "$PREFIX.old" ]; then
    rm -rf "$PREFIX" && mv "$PREFIX.old" "$PREFIX"
    say "the copy failed: the previous version is back in $PREFIX"
  fi
  if [ "$was_running" = 1 ]; then systemctl start appliance.service; fi
  return 0
}
mkdir -p "$PREFIX"
if ! cp -R "$here/." "$PREFIX/"; then
  restore_old
  die "cannot copy the bundle into $PREFIX"
fi
# root-owned and not writable by others, whatever the tarball or umask said: root runs it
chown -R 0:0 "$PREFIX"
chmod -R go-w "$PREFIX"
rm -rf "$PREFIX.old"
ln -sf "$PREFIX/appliance" "$BIN_LINK"

# the config: written once, never overwritten by an upgrade. It may hold secrets (the
# Qdrant and generation servers' API keys): root writes it, the service's group reads it,
# no one else (an older install's world-readable one is closed too)
if [ ! -f "$ETC_DIR/appliance.toml" ]; then
  (umask 077 && sed -e "s|^data_dir = .*|data_dir = \"$DATA_DIR\"|" "$here/appliance.toml" > "$ETC_DIR/appliance.toml")
  say "wrote $ETC_DIR/appliance.toml"
else
  say "kept $ETC_DIR/appliance.toml"
  if grep -q '^answer_mode = "generate"' "$ETC_DIR/appliance.toml"; then
    # an older shipped file said so: the default is now "auto" (see CHANGELOG)
    say "note: $ETC_DIR/appliance.toml says answer_mode = \"generate\"; the shipped default is now \"auto\" (the documents' sentences answer while the chat model is small): change it to adopt that"
  fi
fi
chown "root:$SERVICE_USER" "$ETC_DIR/appliance.toml" \
  || die "cannot give $ETC_DIR/appliance.toml to the group $SERVICE_USER"
chmod 0640 "$ETC_DIR/appliance.toml"
"$PREFIX/appliance" --config "$ETC_DIR/appliance.toml" config check >/dev/null \
  || die "$ETC_DIR/appliance.toml does not validate (appliance config check)"

# the unit, with a memory limit from the RAM budget: budget + 512 MiB for the parser sandbox
fraction="$(sed -n 's/^ram_budget_fraction *= *\([0-9.]*\).*/\1/p' "$ETC_DIR/appliance.toml" | head -n1)"
total_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
memory_max_mib="$(awk -v t="$total_kib" -v f="${fraction:-0.75}" 'BEGIN {printf "%d", t * f / 1024 + 512}')"
sed -e "s|^MemoryMax=.*|MemoryMax=${memory_max_mib}M|" \
    -e "s|/opt/appliance|$PREFIX|g" -e "s|/etc/appliance|$ETC_DIR|g" \
    -e "s|/var/lib/appliance|$DATA_DIR|g" -e "s|^User=.*|User=$SERVICE_USER|" \
    -e "s|^Group=.*|Group=$SERVICE_USER|" \
    "$here/appliance.service" > "$UNIT_DIR/appliance.service"
chmod 0644 "$UNIT_DIR/appliance.service"
say "installed $UNIT_DIR/appliance.service (MemoryMax=${memory_max_mib}M)"
if [ "$systemd_here" = 1 ]; then
  systemctl daemon-reload
  systemctl enable appliance.service >/dev/null 2>&1 || true
  say "enabled appliance.service"
  if [ "$was_running" = 1 ]; then
    systemctl start appliance.service
    say "started the upgraded appliance"
  fi
fi

cat <<DONE
install: done.
  start:      systemctl start appliance
  admin key:  $DATA_DIR/secrets/admin.key (written at first start, mode 0600)
  console:    sudo appliance tui
  health:     curl http://127.0.0.1:$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$ETC_DIR/appliance.toml" | head -n1)/healthz
DONE
