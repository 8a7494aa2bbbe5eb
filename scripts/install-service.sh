#!/usr/bin/env bash
# Install omnid as a systemd service: a dedicated user, /opt/omnid (code + venv), /etc/omnid
# (config and the secrets file, readable by omnid only), /var/lib/omnid (data), and the unit.
#
# Usage: sudo scripts/install-service.sh [--no-start]
# Re-running is safe: existing config and secrets are kept; code and unit are refreshed.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/omnid
ETC=/etc/omnid
DATA=/var/lib/omnid
UNIT=/etc/systemd/system/omnid.service
START=1
[[ "${1:-}" == "--no-start" ]] && START=0

if [[ $EUID -ne 0 ]]; then
  echo "install-service.sh: run as root (sudo)" >&2
  exit 2
fi
command -v python3 >/dev/null || { echo "install-service.sh: python3 is required" >&2; exit 2; }

# 1. The user: a system account with no shell and no home of its own.
if ! id -u omnid >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin omnid
fi

# 2. Directories.
install -d -m 0755 -o root -g root "$PREFIX"
install -d -m 0750 -o root -g omnid "$ETC"
install -d -m 0750 -o omnid -g omnid "$DATA"

# 3. Code and a venv owned by root (the service cannot modify its own code).
if command -v rsync >/dev/null; then
  rsync -a --delete --exclude .venv --exclude .git --exclude var --exclude '__pycache__' "$SRC/" "$PREFIX/"
else
  tar -C "$SRC" --exclude .venv --exclude .git --exclude var --exclude '__pycache__' -cf - . | tar -C "$PREFIX" -xf -
fi
[[ -x "$PREFIX/.venv/bin/python" ]] || python3 -m venv "$PREFIX/.venv"
"$PREFIX/.venv/bin/pip" install -q --upgrade pip
"$PREFIX/.venv/bin/pip" install -q "$PREFIX"

# 4. Config and secrets (kept if present).
if [[ ! -f "$ETC/omnid.toml" ]]; then
  # The example with its data directory moved to $DATA (the only place the unit may write).
  sed -e "s#^data_dir = \"var\"#data_dir = \"$DATA\"#" "$SRC/omnid.toml.example" > "$ETC/omnid.toml.new"
  grep -q "^data_dir = \"$DATA\"" "$ETC/omnid.toml.new" || { echo "install-service.sh: could not set data_dir" >&2; exit 1; }
  install -m 0640 -o root -g omnid "$ETC/omnid.toml.new" "$ETC/omnid.toml"
  rm -f "$ETC/omnid.toml.new"
fi
if [[ ! -f "$ETC/omnid.env" ]]; then
  umask 077
  cat > "$ETC/omnid.env" <<'ENV'
# Secrets for omnid, one OMNID__SECTION__KEY=value per line. Readable by root and omnid only.
# OMNID__ALERTS__TELEGRAM__BOT_TOKEN=123456:ABC...
ENV
  chown root:omnid "$ETC/omnid.env"
  chmod 0640 "$ETC/omnid.env"
fi
"$PREFIX/.venv/bin/omnid" config check "$ETC/omnid.toml"

# 5. The unit.
install -m 0644 "$SRC/systemd/omnid.service" "$UNIT"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" || echo "install-service.sh: systemd-analyze verify reported problems (above)" >&2
fi
systemctl daemon-reload
systemctl enable omnid.service
if [[ $START -eq 1 ]]; then
  systemctl restart omnid.service
  systemctl --no-pager status omnid.service || true
fi
echo "omnid installed. Status: sudo -u omnid $PREFIX/.venv/bin/omnid status --config $ETC/omnid.toml"
