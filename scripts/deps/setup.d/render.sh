# Tools for the yagura-render and yagura-inventory tests (sourced by scripts/test; idempotent; fails loudly):
# - ansible-core from PyPI in a venv (ansible-inventory, ansible-playbook --syntax-check);
# - s3s-fs, a real S3-compatible server, from crates.io (1.3 min–3 min to build; newer releases need a newer rustc).
# terraform is not installed here (no binary downloads): the tests use it when it is on PATH and otherwise
# write the state in the documented v4 layout themselves.
YAGURA_ANSIBLE_VENV="${YAGURA_ANSIBLE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/yagura/ansible-venv}"
export YAGURA_ANSIBLE_VENV
if [ ! -x "$YAGURA_ANSIBLE_VENV/bin/ansible-playbook" ]; then
    echo "  creating $YAGURA_ANSIBLE_VENV with ansible-core"
    /usr/bin/python3 -m venv "$YAGURA_ANSIBLE_VENV"
    "$YAGURA_ANSIBLE_VENV/bin/pip" install --quiet --disable-pip-version-check 'ansible-core~=2.17.0'
fi
"$YAGURA_ANSIBLE_VENV/bin/ansible-playbook" --version | sed -n 1p
if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "  installing s3s-fs 0.14.1"
    cargo install --locked s3s-fs@0.14.1 --features binary
fi
