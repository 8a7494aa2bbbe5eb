#!/usr/bin/env bash
# Install omnid as a systemd service: a dedicated user, /opt/omnid (code + venv), /etc/omnid
# (config and the secrets file, readable by omnid only), /var/lib/omnid (data), and the unit.
#
# Re-running is safe: existing config and secrets are kept; code and unit are refreshed.
set -euo pipefail

NAME=install-service.sh
usage() {
  cat <<'USAGE'
Usage: sudo scripts/install-service.sh [options]

  --prefix DIR     code, and the venv built from it (default /opt/omnid)
  --etc DIR        config omnid.toml and secrets omnid.env (default /etc/omnid)
  --data DIR       the daemon's data directory: logs, socket, SQLite (default /var/lib/omnid)
  --user NAME      service user and group (default omnid)
  --venv DIR       use this existing venv, omnid installed in it, instead of building PREFIX/.venv;
                   the unit runs DIR/bin/omnid
  --root DIR       stage everything under DIR (also $DESTDIR): files land in DIR, while the unit and
                   the config name the final paths. No user is created, no owners set, the unit is
                   only enabled inside DIR (systemctl --root=DIR) and never started. Needs --venv
                   (a venv cannot be moved after it is built).
  --no-start       install and enable the unit, do not (re)start it
  --no-systemctl   do not call systemctl at all
  -h, --help       this help

The paths given are substituted into systemd/omnid.service (ExecStart, User, Group,
WorkingDirectory, EnvironmentFile, ReadWritePaths, StateDirectory) and into the config's data_dir.
USAGE
}
die() { echo "$NAME: $2" >&2; exit "$1"; }

PREFIX=/opt/omnid
ETC=/etc/omnid
DATA=/var/lib/omnid
SVC_USER=omnid
VENV=
ROOT="${DESTDIR:-}"
START=1
SYSTEMCTL=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix | --etc | --data | --user | --venv | --root)
      [[ $# -ge 2 && -n "$2" ]] || die 2 "$1 needs a value (see --help)"
      case "$1" in
        --prefix) PREFIX="$2" ;; --etc) ETC="$2" ;; --data) DATA="$2" ;;
        --user) SVC_USER="$2" ;; --venv) VENV="$2" ;; --root) ROOT="$2" ;;
      esac
      shift 2 ;;
    --no-start) START=0; shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown option '$1' (see --help)" ;;
  esac
done

# Check everything before changing anything.
[[ -z "$VENV" || "$VENV" == /* ]] || VENV="$PWD/$VENV"  # an existing venv: relative to here is clear
SAFE='^/[A-Za-z0-9._/-]*$'  # paths go unquoted into the unit and into sed: no spaces, no specials
for opt in prefix:PREFIX etc:ETC data:DATA venv:VENV; do
  var="${opt#*:}"
  val="${!var}"
  [[ -z "$val" || "$val" =~ $SAFE ]] \
    || die 2 "--${opt%%:*} '$val': give an absolute path of letters, digits and . _ - / only"
done
PREFIX="${PREFIX%/}" ETC="${ETC%/}" DATA="${DATA%/}" VENV="${VENV%/}"
[[ -n "$PREFIX" && -n "$ETC" && -n "$DATA" ]] || die 2 "--prefix, --etc and --data cannot be /"
[[ "$SVC_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die 2 "--user '$SVC_USER': not a valid user name"
if [[ -n "$ROOT" ]]; then
  [[ -d "$ROOT" ]] || die 2 "--root '$ROOT': no such directory"
  ROOT="$(cd "$ROOT" && pwd)"
  [[ "$ROOT" == / ]] && ROOT=
fi
STAGING=0
[[ -n "$ROOT" ]] && STAGING=1
if [[ -n "$VENV" ]]; then
  [[ -x "$VENV/bin/omnid" ]] \
    || die 2 "--venv '$VENV': no executable $VENV/bin/omnid (a venv with omnid installed: python3 -m venv DIR && DIR/bin/pip install PATH/TO/omnid)"
elif [[ $STAGING -eq 1 ]]; then
  die 2 "--root needs --venv: a venv built under '$ROOT' would not work once moved to '$PREFIX'"
fi
if [[ $STAGING -eq 0 && $EUID -ne 0 ]]; then
  die 2 "run as root (sudo), or stage into a directory with --root"
fi
[[ -n "$VENV" ]] || command -v python3 >/dev/null || die 2 "python3 is required to build the venv"

SRC="$(cd "$(dirname "$0")/.." && pwd)"
[[ -f "$SRC/systemd/omnid.service" && -f "$SRC/omnid.toml.example" ]] \
  || die 1 "$SRC does not look like an omnid checkout (no systemd/omnid.service or omnid.toml.example)"
# The code copy mirrors the checkout with --delete: never over a directory that holds something else.
if [[ -d "$ROOT$PREFIX" && -n "$(ls -A "$ROOT$PREFIX")" && ! -f "$ROOT$PREFIX/omnid/__init__.py" ]]; then
  die 2 "--prefix '$ROOT$PREFIX' exists and holds no omnid install; refusing to replace its contents"
fi
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/omnid.service"
RUN_VENV="${VENV:-$PREFIX/.venv}"  # final path: what the unit runs

# own USER:GROUP — ownership only on a real install (a staged tree is owned by whoever deploys it).
own() { [[ $STAGING -eq 1 ]] || echo "-o $1 -g $2"; }

# 1. The user: a system account with no shell and no home of its own.
if [[ $STAGING -eq 1 ]]; then
  echo "$NAME: staging into $ROOT: not creating user $SVC_USER, not setting owners"
elif ! id -u "$SVC_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
fi

# 2. Directories.
# shellcheck disable=SC2046  # own() prints separate words on purpose
install -d -m 0755 $(own root root) "$ROOT$PREFIX"
# shellcheck disable=SC2046
install -d -m 0750 $(own root "$SVC_USER") "$ROOT$ETC"
# shellcheck disable=SC2046
install -d -m 0750 $(own "$SVC_USER" "$SVC_USER") "$ROOT$DATA"
install -d -m 0755 "$UNIT_DIR"

# 3. Code and, unless --venv, a venv owned by root (the service cannot modify its own code).
if command -v rsync >/dev/null; then
  rsync -a --delete --exclude .venv --exclude .git --exclude var --exclude '__pycache__' "$SRC/" "$ROOT$PREFIX/"
else
  tar -C "$SRC" --exclude .venv --exclude .git --exclude var --exclude '__pycache__' -cf - . | tar -C "$ROOT$PREFIX" -xf -
fi
if [[ -z "$VENV" ]]; then  # never when staging (checked above), so PREFIX is the real path
  [[ -x "$PREFIX/.venv/bin/python" ]] || python3 -m venv "$PREFIX/.venv"
  "$PREFIX/.venv/bin/pip" install -q --upgrade pip
  "$PREFIX/.venv/bin/pip" install -q "$PREFIX"
fi

# 4. Config and secrets (kept if present).
if [[ ! -f "$ROOT$ETC/omnid.toml" ]]; then
  # The example with its data directory moved to $DATA (the only place the unit may write).
  sed -e "s#^data_dir = \"var\"#data_dir = \"$DATA\"#" "$SRC/omnid.toml.example" > "$ROOT$ETC/omnid.toml.new"
  grep -q "^data_dir = \"$DATA\"" "$ROOT$ETC/omnid.toml.new" || {
    rm -f "$ROOT$ETC/omnid.toml.new"
    die 1 "could not set data_dir in $ROOT$ETC/omnid.toml (no 'data_dir = \"var\"' line in omnid.toml.example)"
  }
  # shellcheck disable=SC2046
  install -m 0640 $(own root "$SVC_USER") "$ROOT$ETC/omnid.toml.new" "$ROOT$ETC/omnid.toml"
  rm -f "$ROOT$ETC/omnid.toml.new"
fi
if [[ ! -f "$ROOT$ETC/omnid.env" ]]; then
  # shellcheck disable=SC2046
  install -m 0640 $(own root "$SVC_USER") /dev/null "$ROOT$ETC/omnid.env"
  cat > "$ROOT$ETC/omnid.env" <<'ENV'
# Secrets for omnid, one OMNID__SECTION__KEY=value per line. Readable by root and omnid only.
# OMNID__ALERTS__TELEGRAM__BOT_TOKEN=123456:ABC...
ENV
fi
"$RUN_VENV/bin/omnid" config check "$ROOT$ETC/omnid.toml" \
  || die 1 "$ROOT$ETC/omnid.toml does not pass 'omnid config check' (above); fix it and re-run"

# 5. The unit, with the chosen paths and user. StateDirectory= is relative to /var/lib: kept when
# the data directory is there, dropped otherwise (ReadWritePaths= still opens it to the service).
STATE_SED='s#^StateDirectory=omnid$#StateDirectory='"${DATA#/var/lib/}"'#'
[[ "$DATA" == /var/lib/?* ]] || STATE_SED='/^StateDirectory/d'
sed -e "s#/opt/omnid/\.venv/#$RUN_VENV/#g" \
    -e "s#/opt/omnid\b#$PREFIX#g" \
    -e "s#/etc/omnid\b#$ETC#g" \
    -e "$STATE_SED" \
    -e "s#/var/lib/omnid\b#$DATA#g" \
    -e "s#^User=omnid\$#User=$SVC_USER#" \
    -e "s#^Group=omnid\$#Group=$SVC_USER#" \
    "$SRC/systemd/omnid.service" > "$UNIT.new"
grep -q "^ExecStart=$RUN_VENV/bin/omnid run --config $ETC/omnid.toml\$" "$UNIT.new" || {
  rm -f "$UNIT.new"
  die 1 "could not write ExecStart into the unit (has systemd/omnid.service changed?)"
}
install -m 0644 "$UNIT.new" "$UNIT"
rm -f "$UNIT.new"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" || echo "$NAME: systemd-analyze verify reported problems (above)" >&2
fi

# 6. systemd.
if [[ $SYSTEMCTL -eq 0 ]]; then
  echo "$NAME: --no-systemctl: the unit is not enabled; run 'systemctl daemon-reload && systemctl enable --now omnid' yourself"
elif [[ $STAGING -eq 1 ]]; then
  systemctl --root="$ROOT" enable omnid.service
else
  systemctl daemon-reload
  systemctl enable omnid.service
  if [[ $START -eq 1 ]]; then
    systemctl restart omnid.service
    systemctl --no-pager status omnid.service || true
  fi
fi
echo "omnid installed${ROOT:+ under $ROOT}. Status: sudo -u $SVC_USER $RUN_VENV/bin/omnid status --config $ETC/omnid.toml"
