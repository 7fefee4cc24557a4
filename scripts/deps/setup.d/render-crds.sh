# Published CRD validators for the yagura-render crds test (sourced by scripts/test; idempotent; fails loudly):
# @kubernetes-models/cert-manager and @kubernetes-models/argo-cd from npm, generated from cert-manager's and
# Argo CD's CRDs, installed at pinned versions under ~/.cache/yagura/crds. Rook publishes its CRDs on no
# reachable registry, so CephCluster/CephFilesystem stay on the excerpts in crates/render/tests/data/crds/.
YAGURA_CRDS_DIR="${YAGURA_CRDS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/yagura/crds}"
export YAGURA_CRDS_DIR
_yagura_crds_pkgs=("@kubernetes-models/cert-manager@6.0.0" "@kubernetes-models/argo-cd@4.0.0")
_yagura_crds_have() {
    local spec name version
    for spec in "${_yagura_crds_pkgs[@]}"; do
        name="${spec%@*}" version="${spec##*@}"
        grep -q "\"version\": \"$version\"" "$YAGURA_CRDS_DIR/node_modules/$name/package.json" 2>/dev/null || return 1
    done
}
if ! _yagura_crds_have; then
    # node comes from scripts/deps/apt/render.txt; npm is a separate Debian package unless node's own build
    # ships it, so it is installed only when missing (asking for it beside a node that bundles npm conflicts).
    if ! command -v npm >/dev/null; then
        echo "  installing npm (Debian)"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends npm
    fi
    for tool in node npm; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool (Debian packages nodejs, npm)" >&2; exit 1; }
    done
    echo "  installing ${_yagura_crds_pkgs[*]} into $YAGURA_CRDS_DIR"
    mkdir -p "$YAGURA_CRDS_DIR"
    [ -e "$YAGURA_CRDS_DIR/package.json" ] || echo '{ "private": true }' >"$YAGURA_CRDS_DIR/package.json"
    npm install --prefix "$YAGURA_CRDS_DIR" --no-audit --no-fund --ignore-scripts --loglevel=error \
        "${_yagura_crds_pkgs[@]}"
    _yagura_crds_have || { echo "npm did not install ${_yagura_crds_pkgs[*]} into $YAGURA_CRDS_DIR" >&2; exit 1; }
fi
echo "  CRD validators: ${_yagura_crds_pkgs[*]} in $YAGURA_CRDS_DIR"
unset -f _yagura_crds_have
unset _yagura_crds_pkgs
