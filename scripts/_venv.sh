# Sourced by scripts/test and scripts/demo: make (or reuse) the checkout's virtual environment and install
# rodin_nb into it with the pinned versions of constraints.txt. Never touches the system Python (Debian's
# and Ubuntu's refuse `pip install` outside a venv: PEP 668).
#
#   PYTHON=python3.13 scripts/test     the interpreter that creates the venv (default: python3)
#   RODIN_NB_VENV=.venv-3.13           where the venv lives (default: .venv in the checkout, git-ignored)
#
# After `ensure_venv EXTRA`, $VPY is the venv's python and the venv is activated (PATH, VIRTUAL_ENV). The install is skipped when pyproject.toml and
# constraints.txt have not changed since the last one (a stamp in the venv), so a second run starts at once.

ensure_venv() {
    local extra=$1 who=${0#./}
    local py=${PYTHON:-python3}
    VENV=${RODIN_NB_VENV:-.venv}
    if ! command -v "$py" >/dev/null 2>&1 || ! "$py" -c 'import sys' >/dev/null 2>&1; then
        echo "$who: no Python at '$py' (set PYTHON=/path/to/python3.10+)" >&2
        exit 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "$who: rodin_nb needs Python 3.10 or newer; $py is $("$py" -V 2>&1) (set PYTHON=...)" >&2
        exit 1
    fi
    local want have=""
    want=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ -x "$VENV/bin/python" ] && have=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        [ -n "$have" ] && echo "$who: $VENV has Python $have, $py is $want: making it again"
        echo "$who: creating a virtual environment in $VENV (Python $want)"
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
            # Debian/Ubuntu ship venv separately (python3.X-venv); install it when we may.
            local pkg="python$want-venv"
            if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
                echo "$who: installing $pkg with apt-get"
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; } >/dev/null 2>&1 || true
            fi
            rm -rf "$VENV"
            "$py" -m venv "$VENV" || { echo "$who: cannot create a venv with $py (apt-get install $pkg?)" >&2; exit 1; }
        fi
    fi
    VPY=$VENV/bin/python
    # Activated for what runs next, so tools and subprocesses find the venv's commands first.
    VIRTUAL_ENV=$(cd "$VENV" && pwd)
    export VIRTUAL_ENV PATH="$VIRTUAL_ENV/bin:$PATH"
    local stamp
    stamp="$extra $want $(cat pyproject.toml constraints.txt | cksum)"
    # The test extra includes the notebook extra, so a venv made by scripts/test serves scripts/demo too.
    if [ "$(cat "$VENV/.rodin_nb-installed" 2>/dev/null)" = "$stamp" ] \
        || { [ "$extra" = notebook ] && [ "$(cat "$VENV/.rodin_nb-installed" 2>/dev/null)" = "test ${stamp#* }" ]; }; then
        echo "$who: dependencies in $VENV are up to date"
        return
    fi
    echo "$who: installing dependencies into $VENV (pinned by constraints.txt; about 2 minutes the first time)"
    # Quiet unless it fails: the install log is only worth reading when something went wrong.
    local piplog
    piplog=$(mktemp)
    if ! { "$VPY" -m pip install --disable-pip-version-check -q --upgrade pip \
        && "$VPY" -m pip install --disable-pip-version-check -c constraints.txt -e ".[$extra]"; } >"$piplog" 2>&1; then
        cat "$piplog"
        rm -f "$piplog"
        echo "$who: installing dependencies failed (log above)" >&2
        exit 1
    fi
    rm -f "$piplog"
    echo "$stamp" >"$VENV/.rodin_nb-installed"
}
